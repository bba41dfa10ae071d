// A ReprNode as coloured text: scalars by kind, containers with brackets and their children.
// Everything is a text node; the agent already made the text safe and bounded.
import type { ComponentChildren } from "preact";
import type { ReprNode } from "../api/types";
import { useExpansion } from "./Expandable";

const BRACKETS: Record<string, [string, string]> = {
  list: ["[", "]"],
  tuple: ["(", ")"],
  set: ["{", "}"],
  frozenset: ["frozenset({", "})"],
  dict: ["{", "}"],
};

const CONTAINERS = new Set(Object.keys(BRACKETS));

function More({ count, unit }: { count: number; unit: string }) {
  if (count <= 0) return null;
  return (
    <span class="r-more" title={`${count} more ${unit} not captured`}>
      {`… ${count} more`}
    </span>
  );
}

function Container({ node: given }: { node: ReprNode }) {
  const [node, plus] = useExpansion(given);
  const [open, close] = BRACKETS[node.kind] ?? ["[", "]"];
  // The depth cap sends a container as text ("[...]") without children.
  if (node.children.length === 0 && node.text) {
    return (
      <span class={`r-${node.kind}`}>
        {node.text}
        {node.omitted > 0 && " "}
        <More count={node.omitted} unit="items" />
        {plus}
      </span>
    );
  }
  if (node.children.length === 0 && node.omitted === 0) {
    const empty = node.kind === "set" ? "set()" : node.kind === "frozenset" ? "frozenset()" : open + close;
    return <span class={`r-${node.kind}`}>{empty}</span>;
  }
  const parts: ComponentChildren[] = [];
  node.children.forEach((child, position) => {
    if (position > 0) parts.push(<span class="r-punct">, </span>);
    parts.push(<ReprView node={child} />);
  });
  const lonelyTuple = node.kind === "tuple" && node.children.length === 1 && node.omitted === 0;
  const subclass = node.type_name && node.type_name !== node.kind ? `${node.type_name}` : "";
  return (
    <span class={`r-${node.kind}`}>
      {subclass && <span class="r-type">{subclass} </span>}
      <span class="r-punct">{open}</span>
      {parts}
      {lonelyTuple && <span class="r-punct">,</span>}
      {node.omitted > 0 && node.children.length > 0 && <span class="r-punct">, </span>}
      <More count={node.omitted} unit="items" />
      {plus}
      <span class="r-punct">{close}</span>
    </span>
  );
}

/** A scalar or an object's repr; a cut string can load the rest with "+". */
function Leaf({ node: given }: { node: ReprNode }) {
  const [node, plus] = useExpansion(given);
  const unit = node.kind === "str" || node.kind === "bytes" ? "characters" : "items";
  return (
    <span class={`r-${/^[a-z]+$/.test(node.kind) ? node.kind : "object"}`} title={node.type_name || undefined}>
      {node.text}
      {node.omitted > 0 && " "}
      <More count={node.omitted} unit={unit} />
      {plus}
    </span>
  );
}

/** Render one value tree. */
function ReprView({ node }: { node: ReprNode }) {
  if (node.kind === "pair") {
    const [key, value] = node.children;
    return (
      <span class="r-pair">
        {key && <ReprView node={key} />}
        <span class="r-punct">: </span>
        {value && <ReprView node={value} />}
      </span>
    );
  }
  if (CONTAINERS.has(node.kind)) return <Container node={node} />;
  return <Leaf node={node} />;
}

export { ReprView };
