// A Python console on a frame (or on an agent's live process), shared by everyone watching:
// the transcript is the broker's, each entry tagged with who ran it. The input behaves like
// the interactive interpreter: Enter runs a complete input, or adds a line while a block
// (for, def, with…) is open, which an empty line closes; Shift+Enter adds a line, Ctrl+Enter
// runs at once, Tab completes names and attributes, ↑/↓ browse this console's history.
// Each entry of a frame's console has a permalink (#/reports/{id}/frames/{index}/console/{entry});
// opening one scrolls to that entry and highlights it.
import { useEffect, useRef, useState } from "preact/hooks";
import type { ConsolePath } from "../api/client";
import type { ConsoleEntry, EvalResult, OutputChunk } from "../api/types";
import {
  completeInput,
  displayName,
  historyFor,
  interruptRunning,
  loadTranscript,
  setDisplayName,
  submitInput,
  transcriptErrorFor,
  transcriptFor,
} from "../state/consoles";
import { noteTyping, stopTyping, typistsIn } from "../state/presence";
import { reportHref, route, targetEntry } from "../state/route";
import { ExpandProvider } from "./Expandable";
import { ReprView } from "./ReprView";

interface ConsoleProps {
  /** The console's API path: "reports/{id}/frames/{index}" or "agents/{agent_id}". */
  path: ConsolePath;
  /** What the console runs in, for labels ("frame 3", "process 1234"). */
  label: string;
  /** Why the console cannot run code (process gone, frame not held…), or null when it can. */
  unavailable: string | null;
  /** The frame whose agent expands cut results ("+"); absent for process consoles. */
  expandIn?: { reportId: string; frameIndex: number };
}

const INDENT = "    ";

function Prompt({ code }: { code: string }) {
  const lines = code.replace(/\n$/, "").split("\n");
  return (
    <pre class="console-code">
      {lines.map((line, position) => (
        <span key={position}>
          <span class="console-prompt" aria-hidden="true">
            {position === 0 ? ">>> " : "... "}
          </span>
          {line}
          {position < lines.length - 1 ? "\n" : ""}
        </span>
      ))}
    </pre>
  );
}

function Chunk({ chunk }: { chunk: OutputChunk }) {
  if (chunk.stream === "result" && chunk.value !== null) {
    return (
      <pre class="console-result">
        <ReprView node={chunk.value} />
      </pre>
    );
  }
  return <pre class={chunk.stream === "stderr" ? "console-stderr" : "console-stdout"}>{chunk.text}</pre>;
}

function Output({ result }: { result: EvalResult }) {
  const chunks = result.chunks ?? [];
  return (
    <>
      {chunks.length > 0
        ? chunks.map((chunk, position) => <Chunk key={position} chunk={chunk} />)
        : result.output && <pre class="console-stdout">{result.output}</pre>}
      {chunks.length === 0 && result.result && (
        <pre class="console-result">
          <ReprView node={result.result} />
        </pre>
      )}
      {result.error && <pre class="console-error">{result.error}</pre>}
    </>
  );
}

/** A frame console's place, for permalinks to its entries. */
interface FramePlace {
  reportId: string;
  frameIndex: number;
}

function Entry({ entry, place, targeted }: { entry: ConsoleEntry; place?: FramePlace; targeted: boolean }) {
  const time = new Date(entry.created * 1000);
  return (
    <li
      class={targeted ? "console-entry targeted" : "console-entry"}
      id={place === undefined ? undefined : `console-entry-${place.frameIndex}-${entry.id}`}
      tabIndex={targeted ? -1 : undefined}
      data-testid="console-entry"
      data-entry={entry.id}
      data-targeted={targeted}
      data-state={entry.state}
      aria-busy={entry.state === "running"}
      aria-current={targeted ? "location" : undefined}
    >
      <div class="console-meta">
        <span class="console-author" data-testid="console-author">
          {entry.author}
        </span>
        <time class="muted small" dateTime={time.toISOString()}>
          {time.toLocaleTimeString()}
        </time>
        {place !== undefined && (
          <a
            class="console-entry-link"
            data-testid="console-entry-link"
            href={reportHref(place.reportId, place.frameIndex, entry.id)}
            title="Link to this entry"
          >
            <span aria-hidden="true">#</span>
            <span class="visually-hidden">Link to entry {String(entry.id)}</span>
          </a>
        )}
      </div>
      <Prompt code={entry.code} />
      <div class="console-output" data-testid="console-output">
        {entry.state === "running" && <p class="muted small">running…</p>}
        {entry.failure !== null && <pre class="console-error">{entry.failure}</pre>}
        {entry.result !== null && <Output result={entry.result} />}
      </div>
    </li>
  );
}

function Transcript({ entries, place, target }: { entries: ConsoleEntry[]; place?: FramePlace; target: number | null }) {
  return (
    <ol class="console-transcript" aria-live="polite">
      {entries.map((entry) => (
        <Entry key={entry.id} entry={entry} place={place} targeted={entry.id === target} />
      ))}
    </ol>
  );
}

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

/** The name field: who you are in the shared transcripts (kept in this browser). */
function NameField({ id }: { id: string }) {
  return (
    <label class="console-name" for={id}>
      <span class="muted small">Your name</span>
      <input
        id={id}
        data-testid="console-name"
        class="console-name-input"
        value={displayName.value}
        maxLength={100}
        placeholder="anonymous"
        autocomplete="nickname"
        onInput={(event) => setDisplayName(event.currentTarget.value)}
      />
    </label>
  );
}

/** "Ada is typing…": the others typing in this console now (the driver indicator). */
function TypingIndicator({ path }: { path: ConsolePath }) {
  const names = typistsIn(path);
  const who =
    names.length <= 1 ? names[0] : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1] ?? ""}`;
  return (
    <p class="console-typing muted small" role="status" data-testid="console-typing" data-count={names.length}>
      {who === undefined ? "" : `${who} ${names.length === 1 ? "is" : "are"} typing…`}
    </p>
  );
}

/** A console bound to one frame of one report, or to an agent's process. */
function Console({ path, label, unavailable, expandIn }: ConsoleProps) {
  const transcript = transcriptFor(path);
  const loadError = transcriptErrorFor(path);
  const [code, setCode] = useState("");
  const [continuing, setContinuing] = useState(false);
  const [sending, setSending] = useState(false);
  const [requestError, setRequestError] = useState<string | null>(null);
  const [matches, setMatches] = useState<string[]>([]);
  // Position in the input history while browsing it with the arrow keys (null: not browsing).
  const [browsing, setBrowsing] = useState<number | null>(null);
  const draft = useRef("");
  const input = useRef<HTMLTextAreaElement>(null);
  const inputId = `console-input-${path.replace(/[^A-Za-z0-9]/g, "-")}`;
  const [loaded, setLoaded] = useState(false);
  const target = expandIn === undefined ? null : targetEntry(route.value, expandIn.reportId, expandIn.frameIndex);
  const targetShown = target !== null && transcript.value.some((entry) => entry.id === target);

  useEffect(() => {
    setLoaded(false);
    void loadTranscript(path).then(() => setLoaded(true));
    // Opening a console means wanting to type in it (unless it opened for an entry's permalink).
    if (target === null) input.current?.focus();
  }, [path]);

  useEffect(() => {
    if (!targetShown || expandIn === undefined) return;
    const element = document.getElementById(`console-entry-${expandIn.frameIndex}-${target}`);
    if (element === null) return;
    element.scrollIntoView({ block: "center" });
    element.focus({ preventScroll: true });
  }, [target, targetShown]);

  function place(text: string): void {
    setCode(text);
    requestAnimationFrame(() => {
      const area = input.current;
      if (area !== null) area.selectionStart = area.selectionEnd = text.length;
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
      setRequestError(error instanceof Error ? error.message : String(error));
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
      setRequestError(error instanceof Error ? error.message : String(error));
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

  const entries = transcript.value;
  const running = entries.some((entry) => entry.state === "running");
  return (
    <section class="console" aria-label={`Console in ${label}`} data-testid="console">
      {loadError.value !== null && (
        <p class="error small" role="alert">
          Could not load the transcript: {loadError.value}
        </p>
      )}
      {entries.length > 0 &&
        (expandIn === undefined ? (
          <Transcript entries={entries} target={null} />
        ) : (
          <ExpandProvider reportId={expandIn.reportId} frameIndex={expandIn.frameIndex}>
            <Transcript entries={entries} place={expandIn} target={target} />
          </ExpandProvider>
        ))}
      {target !== null && loaded && !targetShown && loadError.value === null && (
        <p class="muted small" role="status" data-testid="console-entry-missing">
          Entry {String(target)} is not in this console's transcript (old entries are not kept).
        </p>
      )}
      {unavailable !== null && (
        <p class="console-unavailable" role="status" id={`${inputId}-why`}>
          {unavailable}
        </p>
      )}
      <TypingIndicator path={path} />
      <form
        class="console-form"
        onSubmit={(event) => {
          event.preventDefault();
          void submit(true);
        }}
      >
        <div class="console-head">
          <label for={inputId} class="console-label">
            Python in {label}{" "}
            <span class="muted small">
              (Enter runs or continues a block, Shift+Enter adds a line, Ctrl+Enter runs now, Tab completes, ↑/↓
              history)
            </span>
          </label>
          <NameField id={`${inputId}-name`} />
        </div>
        <div class="console-row">
          <textarea
            ref={input}
            id={inputId}
            data-testid="console-input"
            data-continuing={continuing}
            class="console-input"
            rows={Math.min(12, Math.max(1, code.split("\n").length))}
            value={code}
            disabled={unavailable !== null}
            aria-describedby={unavailable !== null ? `${inputId}-why` : undefined}
            spellcheck={false}
            autocomplete="off"
            autocapitalize="off"
            placeholder={continuing ? "... " : ">>> "}
            onInput={(event) => {
              const text = event.currentTarget.value;
              setCode(text);
              setMatches([]);
              if (text) noteTyping(path);
              else stopTyping(path);
            }}
            onKeyDown={onKeyDown}
          />
          <button type="submit" class="button primary" disabled={!code.trim() || unavailable !== null || sending}>
            Run
          </button>
          {running && (
            <button
              type="button"
              class="button danger"
              data-testid="console-interrupt"
              onClick={() => {
                interruptRunning(path).catch((error: unknown) =>
                  setRequestError(error instanceof Error ? error.message : String(error)),
                );
              }}
            >
              Interrupt
            </button>
          )}
        </div>
        {matches.length > 0 && (
          <ul class="console-completions" data-testid="console-completions" aria-label="Completions">
            {matches.map((match) => (
              <li key={match}>
                <button type="button" class="button small" onClick={() => choose(match)}>
                  {match}
                </button>
              </li>
            ))}
          </ul>
        )}
        {requestError !== null && (
          <p class="console-error small" role="alert" data-testid="console-request-error">
            {requestError}
          </p>
        )}
      </form>
    </section>
  );
}

export { Console };
