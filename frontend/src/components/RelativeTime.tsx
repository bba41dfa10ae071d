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

/** Put the local date and time in the tooltip when the pointer comes: the first
 * toLocaleString() of a page loads the locale's data (tens of ms), too slow for first render. */
function showExactTime(event: Event): void {
  const element = event.currentTarget as HTMLTimeElement;
  const date = new Date(element.dateTime);
  if (!element.title && !Number.isNaN(date.getTime())) element.title = date.toLocaleString();
}

/** A timestamp (epoch seconds) shown relative to now. */
function RelativeTime({ at }: { at: number }) {
  const date = new Date(at * 1000);
  const valid = !Number.isNaN(date.getTime());
  return (
    <time dateTime={valid ? date.toISOString() : undefined} onPointerEnter={valid ? showExactTime : undefined}>
      {valid ? relative(now.value - at) : "unknown time"}
    </time>
  );
}

export { RelativeTime };
