// The live event stream: one WebSocket to /api/ws that reconnects with exponential backoff.
// It parses and forwards events (what they mean for the app's state lives in state/), and
// carries the console's evals and completions once it has proved the session's key: the
// cookie opens the socket, the key (sent as its first message) lets it run code.
import type {
  BreakpointsEvent,
  ConsoleEvent,
  FramesEvent,
  PresenceEvent,
  ServerEvent,
  SteppedEvent,
  StoreEvent,
  TriageEvent,
  TypingEvent,
  WelcomeEvent,
} from "./types";

/** Presence events, handled apart from the data events. */
type PresenceMessage = WelcomeEvent | PresenceEvent | TypingEvent;

/** Where the connection stands; `retryAt` is when the next attempt starts (epoch ms). */
type SocketStatus =
  | { state: "connecting" }
  | { state: "open" }
  | { state: "closed"; retryAt: number };

interface SocketHandlers {
  onEvent(
    event: ServerEvent | ConsoleEvent | FramesEvent | StoreEvent | SteppedEvent | BreakpointsEvent | TriageEvent,
  ): void;
  onPresence?(event: PresenceMessage): void;
  onStatus(status: SocketStatus): void;
  /** Called on every successful (re)connect: the moment to refetch what may have been missed. */
  onOpen(): void;
  /** The session's key this tab holds, sent first on every (re)connect. */
  sessionKey(): string | null;
}

/** A console command sent over the socket; its answer is what the HTTP route would answer. */
type CommandMessage =
  | { type: "eval"; console: string; code: string; interactive: boolean; name: string }
  | { type: "complete"; console: string; text: string };

/** The broker's answer to a command: the HTTP status and JSON body of the same route. */
interface CommandAnswer {
  status: number;
  body: unknown;
}

/** The command was sent but the socket closed before its answer: it may have run. */
class CommandLost extends Error {
  constructor() {
    super("The connection to the broker closed before the answer came; it may have run (see the transcript).");
    this.name = "CommandLost";
  }
}

let sendOverSocket: ((message: CommandMessage) => Promise<CommandAnswer>) | null = null;

/** Send a console command over the open, proven socket; null when there is none (use HTTP). */
function sendCommand(message: CommandMessage): Promise<CommandAnswer> | null {
  return sendOverSocket === null ? null : sendOverSocket(message);
}

interface EventSocket {
  /** Send a message to the broker if connected (dropped otherwise; presence is resent on open). */
  send(message: object): void;
  /** Try again now instead of waiting for the backoff. */
  retryNow(): void;
  close(): void;
}

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 20_000;

function isServerEvent(
  value: unknown,
): value is ServerEvent | ConsoleEvent | FramesEvent | StoreEvent | SteppedEvent | BreakpointsEvent | TriageEvent {
  if (value === null || typeof value !== "object") return false;
  const record = value as Record<string, unknown>;
  if (record.type === "report") return typeof record.report === "object" && record.report !== null;
  if (record.type === "agent") return typeof record.agent === "object" && record.agent !== null;
  if (record.type === "resumed") return typeof record.report_id === "string";
  if (record.type === "console") return typeof record.entry === "object" && record.entry !== null;
  if (record.type === "frames") return Array.isArray(record.report_ids) && typeof record.at === "number";
  if (record.type === "stepped") return typeof record.from === "string" && typeof record.report_id === "string";
  if (record.type === "store") return typeof record.store === "object" && record.store !== null;
  if (record.type === "breakpoints") return Array.isArray(record.breakpoints);
  if (record.type === "triage") return typeof record.action === "string";
  return false;
}

function isPresenceMessage(value: unknown): value is PresenceMessage {
  if (value === null || typeof value !== "object") return false;
  const record = value as Record<string, unknown>;
  if (record.type === "welcome") return typeof record.viewer === "string";
  if (record.type === "presence") return Array.isArray(record.viewers);
  if (record.type === "typing") return typeof record.viewer === "string" && typeof record.console === "string";
  return false;
}

function isAnswer(value: unknown): value is { type: "answer"; id: number; status: number; body: unknown } {
  if (value === null || typeof value !== "object") return false;
  const record = value as Record<string, unknown>;
  return record.type === "answer" && typeof record.id === "number" && typeof record.status === "number";
}

function isAuthAnswer(value: unknown): value is { type: "auth"; ok: boolean } {
  if (value === null || typeof value !== "object") return false;
  const record = value as Record<string, unknown>;
  return record.type === "auth" && typeof record.ok === "boolean";
}

/** Open the event stream and keep it open until close() is called. */
function connectEvents(handlers: SocketHandlers): EventSocket {
  let socket: WebSocket | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;
  let closed = false;
  let nextId = 1;
  const pending = new Map<number, { resolve(answer: CommandAnswer): void; reject(error: Error): void }>();

  const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/api/ws`;

  function schedule(): void {
    const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** failures);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    failures += 1;
    handlers.onStatus({ state: "closed", retryAt: Date.now() + delay });
    timer = setTimeout(open, delay);
  }

  function open(): void {
    clearTimeout(timer);
    if (closed) return;
    handlers.onStatus({ state: "connecting" });
    const current = new WebSocket(url);
    socket = current;
    const command = (message: CommandMessage): Promise<CommandAnswer> =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        current.send(JSON.stringify({ ...message, id }));
      });
    current.onopen = () => {
      failures = 0;
      const key = handlers.sessionKey();
      if (key !== null) current.send(JSON.stringify({ type: "auth", key }));
      handlers.onStatus({ state: "open" });
      handlers.onOpen();
    };
    current.onmessage = (message: MessageEvent) => {
      if (typeof message.data !== "string") return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(message.data);
      } catch {
        return; // a malformed message is dropped, never fatal
      }
      if (isServerEvent(parsed)) handlers.onEvent(parsed);
      else if (isPresenceMessage(parsed)) handlers.onPresence?.(parsed);
      else if (isAnswer(parsed)) {
        const waiting = pending.get(parsed.id);
        pending.delete(parsed.id);
        waiting?.resolve({ status: parsed.status, body: parsed.body });
      } else if (isAuthAnswer(parsed) && socket === current) {
        sendOverSocket = parsed.ok ? command : null; // refused: the console uses HTTP
      }
    };
    current.onclose = () => {
      if (sendOverSocket === command) sendOverSocket = null;
      for (const waiting of pending.values()) waiting.reject(new CommandLost());
      pending.clear();
      if (socket !== current) return;
      socket = null;
      if (!closed) schedule();
    };
  }

  open();
  return {
    send(message: object) {
      if (socket !== null && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    },
    retryNow() {
      if (socket === null && !closed) {
        failures = 0;
        open();
      }
    },
    close() {
      closed = true;
      clearTimeout(timer);
      sendOverSocket = null;
      socket?.close();
    },
  };
}

export {
  CommandLost,
  connectEvents,
  sendCommand,
  type CommandAnswer,
  type CommandMessage,
  type PresenceMessage,
  type EventSocket,
  type SocketHandlers,
  type SocketStatus,
};
