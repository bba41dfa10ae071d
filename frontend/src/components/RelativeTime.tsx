// "3 min ago", kept fresh by the shared clock, with the exact time on hover.
import { now } from "../state/clock";

function relative(seconds: number): string {
  const delta = Math.max(0, seconds);
  if (delta < 45) return "just now";
  if (delta < 3600) return `${Math.round(delta / 60)} min ago`;
  if (delta < 86_400) return `${Math.round(delta / 3600)} h ago`;
  const days = Math.round(delta / 86_400);
  return days === 1 ? "yesterday" : `${days} days ago`;
}

/** A timestamp (epoch seconds) shown relative to now. */
function RelativeTime({ at }: { at: number }) {
  const date = new Date(at * 1000);
  const valid = !Number.isNaN(date.getTime());
  return (
    <time dateTime={valid ? date.toISOString() : undefined} title={valid ? date.toLocaleString() : undefined}>
      {valid ? relative(now.value - at) : "unknown time"}
    </time>
  );
}

export { RelativeTime };
