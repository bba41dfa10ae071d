// A frame's source context: Pygments tokens as classed spans (text only, never HTML), line
// numbers, the failing line marked and, with column positions, the failing expression.
import type { ComponentChildren } from "preact";
import type { FrameInfo, HighlightLine } from "../api/types";
import { BreakpointForm, LineNumber } from "./Breakpoints";

type Token = [string, string];

const SHORT_CLASS = /^[a-z][a-z0-9]{0,5}$/i;

function safeClass(name: string): string {
  return SHORT_CLASS.test(name) ? name : "";
}

function codePointLength(text: string): number {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}

/** Split `text` at a code point offset (Python's columns count code points, JS strings UTF-16). */
function splitAt(text: string, offset: number): [string, string] {
  let position = 0;
  let seen = 0;
  for (const char of text) {
    if (seen === offset) break;
    position += char.length;
    seen += 1;
  }
  return [text.slice(0, position), text.slice(position)];
}

/** The line's tokens with code points [start, end) wrapped in a <mark>. */
function Marked({ tokens, start, end }: { tokens: Token[]; start: number; end: number }) {
  const before: Token[] = [];
  const inside: Token[] = [];
  const after: Token[] = [];
  let offset = 0;
  for (const [cls, text] of tokens) {
    const length = codePointLength(text);
    let rest = text;
    let restOffset = offset;
    if (restOffset < start) {
      const [head, tail] = splitAt(rest, Math.min(start - restOffset, length));
      if (head) before.push([cls, head]);
      restOffset += codePointLength(head);
      rest = tail;
    }
    if (rest && restOffset < end) {
      const [head, tail] = splitAt(rest, end - restOffset);
      if (head) inside.push([cls, head]);
      rest = tail;
    }
    if (rest) after.push([cls, rest]);
    offset += length;
  }
  return (
    <>
      <Tokens tokens={before} />
      <mark class="failing-expr">
        <Tokens tokens={inside} />
      </mark>
      <Tokens tokens={after} />
    </>
  );
}

function Tokens({ tokens }: { tokens: Token[] }) {
  return (
    <>
      {tokens.map(([cls, text]) => {
        const name = safeClass(cls);
        return name ? <span class={name}>{text}</span> : text;
      })}
    </>
  );
}

function leadingSpaces(text: string): number {
  return codePointLength(text) - codePointLength(text.trimStart());
}

/** Which code points of line `lineno` belong to the failing expression, or null. */
function markedRange(frame: FrameInfo, lineno: number, text: string): [number, number] | null {
  if (frame.colno === null) return null;
  const last = frame.end_lineno ?? frame.lineno;
  const length = codePointLength(text);
  if (lineno < frame.lineno || lineno > last) return null;
  const start = lineno === frame.lineno ? frame.colno : leadingSpaces(text);
  const end = lineno === last && frame.end_colno !== null ? frame.end_colno : length;
  return end > start ? [start, end] : null;
}

/** The source lines around the failing line of one frame; `lineAction` adds a control to
 * each line (stepping's "Run to this line"). */
function SourceView({ frame, lineAction }: { frame: FrameInfo; lineAction?: ((lineno: number) => ComponentChildren) | undefined }) {
  if (frame.context.length === 0) return <p class="muted small">Source not available.</p>;
  const lines: HighlightLine[] =
    frame.highlight?.length === frame.context.length
      ? frame.highlight.map((tokens) => tokens.map(([cls, text]): Token => [cls, text.replace(/[\r\n]+/g, "")]))
      : frame.context.map((text): HighlightLine => [["", text]]);
  const last = frame.end_lineno ?? frame.lineno;
  return (
    <>
    <pre class="source" aria-label={`Source around line ${frame.lineno}`}>
      <code>
        {lines.map((tokens, position) => {
          const lineno = frame.context_start + position;
          const text = frame.context[position] ?? "";
          const failing = lineno >= frame.lineno && lineno <= last;
          const range = failing ? markedRange(frame, lineno, text) : null;
          return (
            <span key={lineno} class={failing ? "line failing" : "line"} data-line={lineno} aria-current={lineno === frame.lineno ? "true" : undefined}>
              <LineNumber file={frame.filename} line={lineno} where={`context-${frame.index}`} />
              {lineAction?.(lineno)}
              {range ? <Marked tokens={tokens} start={range[0]} end={range[1]} /> : <Tokens tokens={tokens} />}
              {"\n"}
            </span>
          );
        })}
      </code>
    </pre>
    <BreakpointForm where={`context-${frame.index}`} />
    </>
  );
}

export { SourceView };
