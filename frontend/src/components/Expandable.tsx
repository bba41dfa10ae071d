// The "+" of a truncated value: while the agent holds the frame, it sends the next page of a
// long list, dict or string. FrameView provides the frame through ExpandProvider; ReprView
// asks useExpansion for the node to draw and the button to draw after it.
import { createContext } from "preact";
import type { ComponentChildren } from "preact";
import { useContext, useEffect, useState } from "preact/hooks";
import type { ReprNode } from "../api/types";
import { loadMoreOfValue } from "../state/frames";

type Expander = (handle: string, offset: number) => Promise<ReprNode>;

const ExpandContext = createContext<Expander | null>(null);

/** Lets the values below expand through this frame's agent. */
function ExpandProvider({ reportId, frameIndex, children }: { reportId: string; frameIndex: number; children: ComponentChildren }) {
  const expander: Expander = (handle, offset) => loadMoreOfValue(reportId, frameIndex, handle, offset);
  return <ExpandContext.Provider value={expander}>{children}</ExpandContext.Provider>;
}

const TEXT_KINDS = new Set(["str", "bytes"]);

/** A container page is appended; a string comes back whole (up to the agent's page). */
function merge(node: ReprNode, page: ReprNode): ReprNode {
  if (TEXT_KINDS.has(node.kind)) return page;
  return { ...node, children: [...node.children, ...page.children], omitted: page.omitted, more: page.more };
}

/** The node as expanded so far, and the "+" button (null when nothing more can be fetched). */
function useExpansion(node: ReprNode): [ReprNode, ComponentChildren] {
  const expander = useContext(ExpandContext);
  const [current, setCurrent] = useState(node);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setCurrent(node);
    setError(null);
  }, [node]);
  const handle = current.more;
  if (expander === null || !handle || current.omitted <= 0) return [current, null];
  const load = async () => {
    setBusy(true);
    setError(null);
    try {
      const offset = TEXT_KINDS.has(current.kind) ? 0 : current.children.length;
      const page = await expander(handle, offset);
      const merged = merge(current, page);
      // A string the agent still cuts cannot be fetched further: offsets count repr text.
      setCurrent(TEXT_KINDS.has(merged.kind) ? { ...merged, more: null } : merged);
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
    } finally {
      setBusy(false);
    }
  };
  const button = (
    <>
      <button
        type="button"
        class="button small r-expand"
        data-testid="expand"
        disabled={busy}
        title="Load more of this value from the live process"
        onClick={() => void load()}
      >
        +
      </button>
      {error && (
        <span class="error small" role="alert">
          {" "}
          {error}
        </span>
      )}
    </>
  );
  return [current, button];
}

export { ExpandProvider, useExpansion };
