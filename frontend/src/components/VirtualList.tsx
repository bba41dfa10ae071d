// A list that renders only the rows near the viewport, so 10,000 reports scroll as smoothly
// as 10. Rows have one fixed height (CSS and `rowHeight` must agree); the page itself
// scrolls (no inner scroll box), and padding stands in for the rows not rendered.
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";

/** Rows rendered beyond each edge of the viewport, so fast scrolling shows no gaps. */
const OVERSCAN = 10;
/** Ask for more rows when this close to the end. */
const NEAR_END = 50;
/** The sticky top bar covers this much of the viewport's top. */
const TOP_COVERED = 56;

interface VirtualListProps<T> {
  items: readonly T[];
  rowHeight: number;
  /** Renders one row: an <li> with `data-index` and a focusable element inside. */
  renderRow: (item: T, index: number) => ComponentChildren;
  /** Called when the rendered rows come near the end (load more). */
  onNearEnd?: () => void;
  /** The user moved the focus into row `index` (Tab, click): make it the selected row. */
  onFocusRow?: (index: number) => void;
  /** The selected row; each time `activeKey` changes the row is scrolled to and focused. */
  activeIndex: number;
  activeKey: string | null;
  class?: string;
  label: string;
}

/** A window-scrolled, virtualized <ol>. */
function VirtualList<T>(props: VirtualListProps<T>) {
  const { items, rowHeight, renderRow, onNearEnd, onFocusRow, activeIndex, activeKey } = props;
  const list = useRef<HTMLOListElement>(null);
  const [range, setRange] = useState<[number, number]>([0, 40]);
  const focusPending = useRef(false);
  // True while this list moves the focus itself: that focus follows the selection, it must
  // not select (two quick key presses would otherwise fight over the selection forever).
  const focusingItself = useRef(false);

  const measure = useCallback(() => {
    const element = list.current;
    if (element === null) return;
    const top = element.getBoundingClientRect().top;
    const first = Math.max(0, Math.floor(-top / rowHeight) - OVERSCAN);
    const last = Math.max(first, Math.ceil((window.innerHeight - top) / rowHeight) + OVERSCAN);
    setRange((previous) => (previous[0] === first && previous[1] === last ? previous : [first, last]));
  }, [rowHeight]);

  useLayoutEffect(measure, [measure, items.length]);

  useEffect(() => {
    let frame = 0;
    const schedule = () => {
      if (frame === 0)
        frame = requestAnimationFrame(() => {
          frame = 0;
          measure();
        });
    };
    window.addEventListener("scroll", schedule, { passive: true });
    window.addEventListener("resize", schedule);
    return () => {
      window.removeEventListener("scroll", schedule);
      window.removeEventListener("resize", schedule);
      cancelAnimationFrame(frame);
    };
  }, [measure]);

  // A new selection: bring its row into view, then focus it once rendered.
  useLayoutEffect(() => {
    const element = list.current;
    if (element === null || activeKey === null || activeIndex < 0) return;
    const rowTop = element.getBoundingClientRect().top + activeIndex * rowHeight;
    if (rowTop < TOP_COVERED) window.scrollBy(0, rowTop - TOP_COVERED - rowHeight / 2);
    else if (rowTop + rowHeight > window.innerHeight) window.scrollBy(0, rowTop + rowHeight - window.innerHeight + rowHeight / 2);
    focusPending.current = true;
    measure();
  }, [activeKey]);

  // Effects may run a render late (Preact flushes them before the next render), so the
  // focus goes to the row selected now, not to the one selected when the effect was made.
  const latest = useRef(activeIndex);
  latest.current = activeIndex;
  useEffect(() => {
    const index = latest.current;
    if (!focusPending.current || index < 0) return;
    const row = list.current?.querySelector<HTMLElement>(`[data-index="${index}"] a, [data-index="${index}"] button`);
    if (row) {
      focusPending.current = false;
      focusingItself.current = true;
      try {
        row.focus({ preventScroll: true });
      } finally {
        focusingItself.current = false;
      }
    }
  });

  const start = Math.min(range[0], items.length);
  const end = Math.min(range[1], items.length);

  useEffect(() => {
    if (onNearEnd !== undefined && items.length > 0 && end >= items.length - NEAR_END) onNearEnd();
  }, [end, items.length]);

  const rows: ComponentChildren[] = [];
  for (let index = start; index < end; index++) {
    const item = items[index];
    if (item !== undefined) rows.push(renderRow(item, index));
  }
  return (
    <ol
      ref={list}
      class={props.class}
      aria-label={props.label}
      onFocusIn={(event) => {
        if (focusingItself.current || onFocusRow === undefined) return;
        const row = (event.target as HTMLElement).closest<HTMLElement>("[data-index]");
        const index = Number(row?.dataset.index ?? "-1");
        if (index >= 0 && index !== latest.current) onFocusRow(index);
      }}
      style={{ paddingTop: `${start * rowHeight}px`, paddingBottom: `${(items.length - end) * rowHeight}px` }}
    >
      {rows}
    </ol>
  );
}

export { VirtualList };
