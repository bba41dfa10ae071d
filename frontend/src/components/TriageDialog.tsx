// The triage steps that ask first, in one modal <dialog> (focus stays inside while it is open;
// Esc or Cancel closes it): how long a mute lasts, and the confirmation of a deletion.
import { useEffect, useRef, useState } from "preact/hooks";
import { CLEAR_CONFIRMATION } from "../api/client";
import { clearEverything, groupList, removeGroup, removeReport, setGroupState, triageDialog, type TriageDialog } from "../state/groups";
import { backHref } from "../state/navigation";
import { parseRoute } from "../state/route";

/** Mute lengths offered, in minutes. */
const MUTE_TIMES: [minutes: number, label: string][] = [
  [60, "1 hour"],
  [8 * 60, "8 hours"],
  [24 * 60, "24 hours"],
  [7 * 24 * 60, "1 week"],
];

function groupTitle(fingerprint: string): string {
  const load = groupList.value;
  const group = load.state === "done" ? load.groups.find((item) => item.fingerprint === fingerprint) : undefined;
  if (group?.latest == null) return "this group";
  const { type_name: type, message } = group.latest;
  const text = message ? `${type}: ${message}` : type;
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}

function groupReports(fingerprint: string): string {
  const load = groupList.value;
  const group = load.state === "done" ? load.groups.find((item) => item.fingerprint === fingerprint) : undefined;
  if (group === undefined) return "its reports";
  return `its ${String(group.kept)} stored ${group.kept === 1 ? "report" : "reports"} and its count of ${String(group.count)}`;
}

function close(): void {
  triageDialog.value = null;
}

function Buttons({ busy, label, danger, ready = true }: { busy: boolean; label: string; danger: boolean; ready?: boolean }) {
  return (
    <div class="dialog-buttons">
      <button type="button" class="button" onClick={close} autoFocus={danger} data-testid="triage-cancel">
        Cancel
      </button>
      <button
        type="submit"
        class={danger ? "button danger" : "button primary"}
        disabled={busy || !ready}
        autoFocus={!danger}
        data-testid="triage-confirm"
      >
        {busy ? "Working…" : label}
      </button>
    </div>
  );
}

function MuteForm({ fingerprint, run, busy }: { fingerprint: string; run: Run; busy: boolean }) {
  const [how, setHow] = useState<"time" | "occurrences">("time");
  const [minutes, setMinutes] = useState(MUTE_TIMES[0]?.[0] ?? 60);
  const [occurrences, setOccurrences] = useState("10");
  const count = Number(occurrences);
  const valid = how === "time" || (Number.isInteger(count) && count >= 1 && count <= 1_000_000);
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        if (!valid) return;
        run(() =>
          setGroupState(fingerprint, how === "time" ? { state: "muted", minutes } : { state: "muted", occurrences: count }),
        );
      }}
    >
      <h2 id="triage-title">Mute this error</h2>
      <p class="muted small">{groupTitle(fingerprint)}</p>
      <p class="small">A muted error is still counted and stored; it reopens when the mute ends.</p>
      <fieldset class="mute-choice">
        <legend>Mute it</legend>
        <label>
          <input type="radio" name="mute-how" checked={how === "time"} onChange={() => setHow("time")} />
          {" for "}
          <select
            aria-label="How long"
            data-testid="mute-minutes"
            value={String(minutes)}
            onChange={(event) => {
              setHow("time");
              setMinutes(Number(event.currentTarget.value));
            }}
          >
            {MUTE_TIMES.map(([value, label]) => (
              <option key={value} value={String(value)}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <label>
          <input
            type="radio"
            name="mute-how"
            data-testid="mute-by-count"
            checked={how === "occurrences"}
            onChange={() => setHow("occurrences")}
          />
          {" until "}
          <input
            type="number"
            min={1}
            max={1_000_000}
            class="mute-count"
            aria-label="How many more occurrences"
            data-testid="mute-occurrences"
            value={occurrences}
            onInput={(event) => {
              setHow("occurrences");
              setOccurrences(event.currentTarget.value);
            }}
          />
          {" more occurrences"}
        </label>
      </fieldset>
      <Buttons busy={busy} label="Mute" danger={false} ready={valid} />
    </form>
  );
}

function ClearForm({ run, busy }: { run: Run; busy: boolean }) {
  const [typed, setTyped] = useState("");
  const ready = typed.trim().toLowerCase() === CLEAR_CONFIRMATION;
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        if (ready) run(clearEverything);
      }}
    >
      <h2 id="triage-title">Clear everything?</h2>
      <p>Every report, group, count and share link on this broker is deleted. This cannot be undone.</p>
      <label class="confirm-field">
        Type <strong>{CLEAR_CONFIRMATION}</strong> to confirm
        <input
          data-testid="clear-confirmation"
          value={typed}
          autoComplete="off"
          spellcheck={false}
          onInput={(event) => setTyped(event.currentTarget.value)}
        />
      </label>
      <Buttons busy={busy} label="Clear everything" danger ready={ready} />
    </form>
  );
}

type Run = (action: () => Promise<string | null>, after?: () => void) => void;

function Body({ dialog, run, busy }: { dialog: TriageDialog; run: Run; busy: boolean }) {
  if (dialog.kind === "mute") return <MuteForm fingerprint={dialog.fingerprint} run={run} busy={busy} />;
  if (dialog.kind === "clear") return <ClearForm run={run} busy={busy} />;
  if (dialog.kind === "delete-group") {
    const { fingerprint } = dialog;
    return (
      <form
        onSubmit={(event) => {
          event.preventDefault();
          run(() => removeGroup(fingerprint));
        }}
      >
        <h2 id="triage-title">Delete this group?</h2>
        <p class="muted small">{groupTitle(fingerprint)}</p>
        <p>This deletes {groupReports(fingerprint)}. This cannot be undone.</p>
        <Buttons busy={busy} label="Delete group" danger />
      </form>
    );
  }
  const { id } = dialog;
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        run(
          () => removeReport(id),
          () => {
            // Off the deleted report's page, back to the list it came from.
            const current = parseRoute(location.hash);
            if (current.name === "report" && current.id === id) location.hash = backHref.value;
          },
        );
      }}
    >
      <h2 id="triage-title">Delete this report?</h2>
      <p>Its group still counts it as seen. This cannot be undone.</p>
      <Buttons busy={busy} label="Delete report" danger />
    </form>
  );
}

/** The triage dialog, shown while `triageDialog` is set. */
function TriageDialogHost() {
  const element = useRef<HTMLDialogElement>(null);
  const dialog = triageDialog.value;
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<string | null>(null);

  useEffect(() => {
    const node = element.current;
    if (node === null) return;
    setFailure(null);
    setBusy(false);
    if (dialog !== null && !node.open) node.showModal();
    else if (dialog === null && node.open) node.close();
  }, [dialog]);

  const run: Run = (action, after) => {
    setBusy(true);
    setFailure(null);
    void action().then((failed) => {
      setBusy(false);
      if (failed !== null) {
        setFailure(failed);
        return;
      }
      close();
      after?.();
    });
  };

  return (
    <dialog
      ref={element}
      class="triage-dialog"
      aria-labelledby={dialog === null ? undefined : "triage-title"}
      data-testid="triage-dialog"
      // Esc: "cancel" comes at once; "close" a task later, maybe after the next dialog opened.
      onCancel={close}
    >
      {dialog !== null && <Body key={JSON.stringify(dialog)} dialog={dialog} run={run} busy={busy} />}
      {failure !== null && (
        <p class="error" role="alert" data-testid="triage-error">
          {failure}
        </p>
      )}
    </dialog>
  );
}

export { TriageDialogHost };
