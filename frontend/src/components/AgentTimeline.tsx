// Errors per agent over the last hour, as twelve five-minute bars (from the loaded reports).
import { computed } from "@preact/signals";
import { now } from "../state/clock";
import { reports } from "../state/reports";

const BUCKETS = 12;
const BUCKET_SECONDS = 300;

/** Per agent id: report counts in the last hour, oldest bucket first. */
const timelines = computed(() => {
  const end = now.value;
  const start = end - BUCKETS * BUCKET_SECONDS;
  const found = new Map<string, number[]>();
  for (const report of reports.value) {
    if (report.created < start) break; // newest first: the rest is older
    const bucket = Math.min(BUCKETS - 1, Math.floor((report.created - start) / BUCKET_SECONDS));
    let counts = found.get(report.agent_id);
    if (counts === undefined) {
      counts = new Array<number>(BUCKETS).fill(0);
      found.set(report.agent_id, counts);
    }
    counts[bucket] = (counts[bucket] ?? 0) + 1;
  }
  return found;
});

/** The bars of one agent. */
function AgentTimeline({ agentId }: { agentId: string }) {
  const counts = timelines.value.get(agentId) ?? new Array<number>(BUCKETS).fill(0);
  const total = counts.reduce((sum, count) => sum + count, 0);
  const highest = Math.max(1, ...counts);
  const label = total === 1 ? "1 error in the last hour" : `${total} errors in the last hour`;
  return (
    <span class="timeline" role="img" aria-label={label} title={label} data-testid="agent-timeline" data-total={total}>
      {counts.map((count, position) => (
        <span
          key={position}
          class={count > 0 ? "timeline-bar hit" : "timeline-bar"}
          style={{ height: `${count > 0 ? Math.max(15, Math.round((count / highest) * 100)) : 8}%` }}
        />
      ))}
    </span>
  );
}

export { AgentTimeline };
