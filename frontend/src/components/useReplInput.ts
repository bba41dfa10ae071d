// The console's input, as the interactive interpreter behaves: Enter runs a complete input, or
// adds a line while a block (for, def, with…) is open, which an empty line closes; Shift+Enter
// adds a line, Ctrl+Enter runs at once, Tab completes names and attributes, ↑/↓ browse this
// console's history. What is shared (the transcript, the history, who is typing) is in state/;
// what is left here is this one input box's.
import type { RefObject } from "preact";
import { useRef, useState } from "preact/hooks";
import type { ConsolePath } from "../api/client";
import { completeInput, historyFor, interruptRunning, submitInput } from "../state/consoles";
import { noteTyping, stopTyping } from "../state/presence";

const INDENT = "    ";

/** The indentation the next line of a block gets: the last line's, one more after a ":". */
function nextIndent(code: string): string {
  const last = code.split("\n").pop() ?? "";
  const indent = /^[ \t]*/.exec(last)?.[0] ?? "";
  return last.trimEnd().endsWith(":") ? indent + INDENT : indent;
}

/** The longest common prefix of some strings. */
function commonPrefix(words: string[]): string {
  if (words.length === 0) return "";
  let prefix = words[0] ?? "";
  for (const word of words) while (!word.startsWith(prefix)) prefix = prefix.slice(0, -1);
  return prefix;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The REPL input of one console: its text and what the keys and buttons do with it. */
interface ReplInput {
  /** The textarea this hook drives (for the cursor, and focus on open). */
  input: RefObject<HTMLTextAreaElement | null>;
  /** The text in the input. */
  code: string;
  /** A block is open: the next Enter adds a line unless the last one is empty. */
  continuing: boolean;
  /** An input is on its way to the broker. */
  sending: boolean;
  /** Completions offered for the word before the cursor (more than one). */
  matches: string[];
  /** Why the last request (run, complete, interrupt) failed, or null. */
  requestError: string | null;
  onInput: (event: Event) => void;
  onKeyDown: (event: KeyboardEvent) => void;
  /** Run the input (`interactive`: the agent may answer that a block is still open). */
  submit: (interactive: boolean) => Promise<void>;
  /** Put a completion in place of the word before the cursor. */
  choose: (match: string) => void;
  /** Interrupt what runs in this console. */
  interrupt: () => void;
}

/** The REPL input of the console at `path`; nothing runs while `unavailable` says why. */
function useReplInput(path: ConsolePath, unavailable: string | null): ReplInput {
  const [code, setCode] = useState("");
  const [continuing, setContinuing] = useState(false);
  const [sending, setSending] = useState(false);
  const [requestError, setRequestError] = useState<string | null>(null);
  const [matches, setMatches] = useState<string[]>([]);
  // Position in the input history while browsing it with the arrow keys (null: not browsing).
  const [browsing, setBrowsing] = useState<number | null>(null);
  const draft = useRef("");
  const input = useRef<HTMLTextAreaElement>(null);

  /** Put `text` in the input with the cursor at its end, unless the user typed on meanwhile. */
  function place(text: string): void {
    setCode(text);
    requestAnimationFrame(() => {
      const area = input.current;
      // A key typed between the render and this frame is already in the value: leave the
      // cursor where that key put it (moving it back would put the next keys before it).
      if (area !== null && area.value === text) area.selectionStart = area.selectionEnd = text.length;
    });
  }

  async function submit(interactive: boolean): Promise<void> {
    if (unavailable !== null || sending) return;
    // An empty (or blank) last line closes an open block, as in the interpreter.
    let source = code;
    if (continuing && /\n[ \t]*$/.test(source)) source = source.replace(/[ \t]*$/, "");
    if (!source.trim()) return;
    setSending(true);
    setRequestError(null);
    setMatches([]);
    try {
      const outcome = await submitInput(path, source, interactive);
      if (outcome.incomplete) {
        setContinuing(true);
        place(`${source}\n${nextIndent(source)}`);
      } else {
        setContinuing(false);
        setBrowsing(null);
        setCode("");
        stopTyping(path);
      }
    } catch (error) {
      setRequestError(messageOf(error));
    } finally {
      setSending(false);
    }
  }

  async function complete(area: HTMLTextAreaElement): Promise<void> {
    const original = area.value;
    const before = area.value.slice(0, area.selectionStart);
    const after = area.value.slice(area.selectionEnd);
    const lineStart = before.slice(before.lastIndexOf("\n") + 1);
    if (!lineStart.trim()) {
      place(before + INDENT + after);
      return;
    }
    try {
      const found = await completeInput(path, before);
      if (area.value !== original) return; // typed on meanwhile: the answer is stale
      if (!found.ok) {
        setRequestError(found.error);
        return;
      }
      const head = before.slice(0, before.length - found.replace);
      const token = before.slice(before.length - found.replace);
      const prefix = commonPrefix(found.matches);
      if (prefix.length > token.length) place(head + prefix + after);
      setMatches(found.matches.length > 1 ? found.matches : []);
    } catch (error) {
      setRequestError(messageOf(error));
    }
  }

  function choose(match: string): void {
    const area = input.current;
    if (area === null) return;
    const before = area.value.slice(0, area.selectionStart);
    const token = /[\w.\u0080-\uffff]*$/.exec(before)?.[0] ?? "";
    place(before.slice(0, before.length - token.length) + match + area.value.slice(area.selectionEnd));
    setMatches([]);
    area.focus();
  }

  function browse(step: -1 | 1, area: HTMLTextAreaElement): boolean {
    const history = historyFor(path);
    if (history.length === 0) return false;
    const atStart = !area.value.slice(0, area.selectionStart).includes("\n");
    const atEnd = !area.value.slice(area.selectionEnd).includes("\n");
    if ((step < 0 && !atStart) || (step > 0 && !atEnd)) return false;
    let position = browsing ?? history.length;
    if (browsing === null) draft.current = code;
    position = Math.max(0, Math.min(history.length, position + step));
    setBrowsing(position === history.length ? null : position);
    setContinuing(false);
    setCode(position === history.length ? draft.current : (history[position] ?? ""));
    return true;
  }

  function onKeyDown(event: KeyboardEvent): void {
    const area = event.currentTarget as HTMLTextAreaElement;
    if (event.isComposing) return;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      void submit(false);
    } else if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      void submit(true);
    } else if (event.key === "Tab" && !event.shiftKey && !event.altKey) {
      event.preventDefault();
      void complete(area);
    } else if (event.key === "Escape") {
      setMatches([]);
    } else if (event.key === "ArrowUp" && !event.shiftKey && browse(-1, area)) {
      event.preventDefault();
    } else if (event.key === "ArrowDown" && !event.shiftKey && browse(1, area)) {
      event.preventDefault();
    }
  }

  function onInput(event: Event): void {
    const text = (event.currentTarget as HTMLTextAreaElement).value;
    setCode(text);
    setMatches([]);
    if (text) noteTyping(path);
    else stopTyping(path);
  }

  function interrupt(): void {
    interruptRunning(path).catch((error: unknown) => setRequestError(messageOf(error)));
  }

  return { input, code, continuing, sending, matches, requestError, onInput, onKeyDown, submit, choose, interrupt };
}

export { useReplInput, type ReplInput };
