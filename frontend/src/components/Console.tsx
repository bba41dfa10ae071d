// The interactive console under a frame: type Python, the broker relays it to the agent that
// holds the frame, and the transcript shows what it printed and returned, or why it failed.
import { useEffect, useRef, useState } from "preact/hooks";
import { clearTranscript, historyFor, runInFrame, transcriptFor, type ConsoleEntry } from "../state/consoles";
import { ReprView } from "./ReprView";

interface ConsoleProps {
  reportId: string;
  index: number;
  /** Why the console cannot run code (process gone, frame not held…), or null when it can. */
  unavailable: string | null;
}

function Prompt({ code }: { code: string }) {
  const lines = code.split("\n");
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

function Entry({ entry }: { entry: ConsoleEntry }) {
  const { result, failure } = entry;
  const pending = result === null && failure === null;
  return (
    <li class="console-entry" data-testid="console-entry" aria-busy={pending}>
      <Prompt code={entry.code} />
      <div class="console-output" data-testid="console-output">
        {pending && <p class="muted small">running…</p>}
        {failure !== null && <pre class="console-error">{failure}</pre>}
        {result !== null && result.output && <pre class="console-stdout">{result.output}</pre>}
        {result?.result && (
          <pre class="console-result">
            <ReprView node={result.result} />
          </pre>
        )}
        {result !== null && result.error && <pre class="console-error">{result.error}</pre>}
      </div>
    </li>
  );
}

/** A console bound to one frame of one report. */
function Console({ reportId, index, unavailable }: ConsoleProps) {
  const transcript = transcriptFor(reportId, index);
  const [code, setCode] = useState("");
  // Position in the input history while browsing it with the arrow keys (null: not browsing).
  const [browsing, setBrowsing] = useState<number | null>(null);
  const draft = useRef("");
  const input = useRef<HTMLTextAreaElement>(null);
  const inputId = `console-input-${index}`;

  // Opening a console means wanting to type in it.
  useEffect(() => {
    input.current?.focus();
  }, []);

  function submit(): void {
    if (!code.trim() || unavailable !== null) return;
    void runInFrame(reportId, index, code);
    setCode("");
    setBrowsing(null);
  }

  function browse(step: -1 | 1, input: HTMLTextAreaElement): boolean {
    const history = historyFor(reportId, index);
    if (history.length === 0) return false;
    const atStart = !input.value.slice(0, input.selectionStart).includes("\n");
    const atEnd = !input.value.slice(input.selectionEnd).includes("\n");
    if ((step < 0 && !atStart) || (step > 0 && !atEnd)) return false;
    let position = browsing ?? history.length;
    if (browsing === null) draft.current = code;
    position = Math.max(0, Math.min(history.length, position + step));
    setBrowsing(position === history.length ? null : position);
    setCode(position === history.length ? draft.current : (history[position] ?? ""));
    return true;
  }

  function onKeyDown(event: KeyboardEvent): void {
    const input = event.currentTarget as HTMLTextAreaElement;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === "ArrowUp" && !event.shiftKey && browse(-1, input)) {
      event.preventDefault();
    } else if (event.key === "ArrowDown" && !event.shiftKey && browse(1, input)) {
      event.preventDefault();
    }
  }

  const entries = transcript.value;
  return (
    <section class="console" aria-label={`Console in frame ${index}`}>
      {entries.length > 0 && (
        <ol class="console-transcript" aria-live="polite">
          {entries.map((entry) => (
            <Entry key={entry.id} entry={entry} />
          ))}
        </ol>
      )}
      {unavailable !== null && (
        <p class="console-unavailable" role="status" id={`${inputId}-why`}>
          {unavailable}
        </p>
      )}
      <form
        class="console-form"
        onSubmit={(event) => {
          event.preventDefault();
          submit();
        }}
      >
        <label for={inputId} class="console-label">
          Python in this frame <span class="muted small">(Enter runs, Shift+Enter adds a line, ↑/↓ history)</span>
        </label>
        <div class="console-row">
          <textarea
            ref={input}
            id={inputId}
            data-testid="console-input"
            class="console-input"
            rows={Math.min(10, Math.max(1, code.split("\n").length))}
            value={code}
            disabled={unavailable !== null}
            aria-describedby={unavailable !== null ? `${inputId}-why` : undefined}
            spellcheck={false}
            autocomplete="off"
            autocapitalize="off"
            placeholder=">>> "
            onInput={(event) => setCode(event.currentTarget.value)}
            onKeyDown={onKeyDown}
          />
          <button type="submit" class="button primary" disabled={!code.trim() || unavailable !== null}>
            Run
          </button>
          {entries.length > 0 && (
            <button type="button" class="button" onClick={() => clearTranscript(reportId, index)}>
              Clear
            </button>
          )}
        </div>
      </form>
    </section>
  );
}

export { Console };
