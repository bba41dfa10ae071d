// A Python console on a frame (or on an agent's live process), shared by everyone watching:
// the transcript (ConsoleTranscript) is the broker's, each entry tagged with who ran it; the
// input (useReplInput) behaves like the interactive interpreter.
import { useEffect } from "preact/hooks";
import type { ConsolePath } from "../api/client";
import { displayName, setDisplayName, transcriptFor } from "../state/consoles";
import { typistsIn } from "../state/presence";
import { route, targetEntry } from "../state/route";
import { ConsoleTranscript } from "./ConsoleTranscript";
import { useReplInput } from "./useReplInput";

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
  const repl = useReplInput(path, unavailable);
  const { code, continuing, sending, matches, requestError } = repl;
  const inputId = `console-input-${path.replace(/[^A-Za-z0-9]/g, "-")}`;
  const running = transcriptFor(path).value.some((entry) => entry.state === "running");

  useEffect(() => {
    // Opening a console means wanting to type in it (unless it opened for an entry's permalink).
    const target = expandIn === undefined ? null : targetEntry(route.peek(), expandIn.reportId, expandIn.frameIndex);
    if (target === null) repl.input.current?.focus();
  }, [path]);

  return (
    <section class="console" aria-label={`Console in ${label}`} data-testid="console">
      <ConsoleTranscript path={path} place={expandIn} />
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
          void repl.submit(true);
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
            ref={repl.input}
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
            onInput={repl.onInput}
            onKeyDown={repl.onKeyDown}
          />
          <button type="submit" class="button primary" disabled={!code.trim() || unavailable !== null || sending}>
            Run
          </button>
          {running && (
            <button
              type="button"
              class="button danger"
              data-testid="console-interrupt"
              onClick={repl.interrupt}
            >
              Interrupt
            </button>
          )}
        </div>
        {matches.length > 0 && (
          <ul class="console-completions" data-testid="console-completions" aria-label="Completions">
            {matches.map((match) => (
              <li key={match}>
                <button type="button" class="button small" onClick={() => repl.choose(match)}>
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
