// Who else is looking, and where: a top-bar list of the other tabs with a Follow button each,
// a bar while following someone, and who else is on the report being shown.
import type { Viewer } from "../api/types";
import { displayName, setDisplayName } from "../state/consoles";
import { follow, following, hashOf, otherViewers } from "../state/presence";
import { reports } from "../state/reports";
import { route } from "../state/route";

function place(viewer: Viewer): string {
  if (viewer.report === null) return "the report list";
  const summary = reports.value.find((report) => report.id === viewer.report);
  const what = summary ? `${summary.type_name}${summary.message ? `: ${summary.message}` : ""}` : viewer.report;
  const short = what.length > 60 ? `${what.slice(0, 60)}…` : what;
  return viewer.frame === null ? short : `${short} (frame ${viewer.frame})`;
}

function ViewerRow({ viewer }: { viewer: Viewer }) {
  const followed = following.value === viewer.id;
  return (
    <li class="viewer" data-testid="viewer" data-viewer={viewer.id}>
      <span class="viewer-name">{viewer.name}</span>
      <a class="viewer-place" href={hashOf(viewer)}>
        {place(viewer)}
      </a>
      <button
        type="button"
        class="button small"
        data-testid="follow"
        aria-pressed={followed}
        onClick={() => follow(followed ? null : viewer.id)}
      >
        {followed ? "Following" : "Follow"}
      </button>
    </li>
  );
}

/** The top bar's "N others here" menu. */
function PresenceMenu() {
  const others = otherViewers.value;
  const label = others.length === 0 ? "Just you" : others.length === 1 ? "1 other here" : `${others.length} others here`;
  return (
    <details class="presence" data-testid="presence">
      <summary data-testid="presence-count" data-count={others.length}>
        <span class="presence-dot" aria-hidden="true" />
        {label}
      </summary>
      <div class="presence-panel">
        {others.length === 0 ? (
          <p class="muted small">Nobody else has this dashboard open.</p>
        ) : (
          <ul class="viewers" aria-label="Other viewers">
            {others.map((viewer) => (
              <ViewerRow key={viewer.id} viewer={viewer} />
            ))}
          </ul>
        )}
        <label class="presence-name">
          Your name{" "}
          <input
            type="text"
            data-testid="presence-name"
            maxLength={40}
            value={displayName.value}
            placeholder="anonymous"
            onChange={(event) => setDisplayName(event.currentTarget.value)}
          />
        </label>
      </div>
    </details>
  );
}

/** Under the top bar: the follow-mode bar, and who else is on this report. */
function PresenceBar() {
  const others = otherViewers.value;
  const leader = others.find((viewer) => viewer.id === following.value);
  const current = route.value;
  const here = current.name === "report" ? others.filter((viewer) => viewer.report === current.id) : [];
  if (leader === undefined && here.length === 0) return null;
  return (
    <div class="presence-bar">
      {leader !== undefined && (
        <p class="following" role="status" data-testid="following">
          Following <strong>{leader.name}</strong>: this tab shows what they look at.{" "}
          <button type="button" class="button small" onClick={() => follow(null)}>
            Stop following
          </button>
        </p>
      )}
      {here.length > 0 && (
        <p class="also-here muted small" data-testid="also-here">
          Also on this report:{" "}
          {here.map((viewer, position) => (
            <span key={viewer.id}>
              {position > 0 && ", "}
              <strong>{viewer.name}</strong>
              {viewer.frame !== null && ` (frame ${viewer.frame})`}
            </span>
          ))}
        </p>
      )}
    </div>
  );
}

export { PresenceBar, PresenceMenu };
