// A console's transcript, shared by everyone watching: each entry's input, output and author,
// live from state/consoles. In a frame's console each entry has a permalink
// (#/reports/{id}/frames/{index}/console/{entry}); opening one scrolls to that entry and
// highlights it.
import { useEffect } from "preact/hooks";
import type { ConsolePath } from "../api/client";
import type { ConsoleEntry, EvalResult, OutputChunk } from "../api/types";
import { loadTranscript, transcriptErrorFor, transcriptFor, transcriptLoadedFor } from "../state/consoles";
import { reportHref, route, targetEntry } from "../state/route";
import { ExpandProvider } from "./Expandable";
import { ReprView } from "./ReprView";

/** A frame console's place, for permalinks to its entries and for expanding cut values. */
interface FramePlace {
  reportId: string;
  frameIndex: number;
}

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

/** The transcript of the console at `path` (loaded when shown), with its load error and, for a
 * frame's console, the entry the address points at. */
function ConsoleTranscript({ path, place }: { path: ConsolePath; place?: FramePlace }) {
  const transcript = transcriptFor(path);
  const loadError = transcriptErrorFor(path);
  const loaded = transcriptLoadedFor(path);
  const target = place === undefined ? null : targetEntry(route.value, place.reportId, place.frameIndex);
  const entries = transcript.value;
  const targetShown = target !== null && entries.some((entry) => entry.id === target);

  useEffect(() => {
    void loadTranscript(path);
  }, [path]);

  useEffect(() => {
    if (!targetShown || place === undefined) return;
    const element = document.getElementById(`console-entry-${place.frameIndex}-${target}`);
    if (element === null) return;
    element.scrollIntoView({ block: "center" });
    element.focus({ preventScroll: true });
  }, [target, targetShown]);

  return (
    <>
      {loadError.value !== null && (
        <p class="error small" role="alert">
          Could not load the transcript: {loadError.value}
        </p>
      )}
      {entries.length > 0 &&
        (place === undefined ? (
          <Transcript entries={entries} target={null} />
        ) : (
          <ExpandProvider reportId={place.reportId} frameIndex={place.frameIndex}>
            <Transcript entries={entries} place={place} target={target} />
          </ExpandProvider>
        ))}
      {target !== null && loaded.value && !targetShown && loadError.value === null && (
        <p class="muted small" role="status" data-testid="console-entry-missing">
          Entry {String(target)} is not in this console's transcript (old entries are not kept).
        </p>
      )}
    </>
  );
}

export { ConsoleTranscript, type FramePlace };
