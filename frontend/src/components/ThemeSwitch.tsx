// The theme switch in the top bar: one button cycling System → Light → Dark.
import { nextTheme, setTheme, theme, type ThemeChoice } from "../state/theme";

const LABELS: Record<ThemeChoice, string> = { system: "System", light: "Light", dark: "Dark" };
const ICONS: Record<ThemeChoice, string> = { system: "◐", light: "☀", dark: "☾" };

/** Shows the current theme; a click switches to the next one. */
function ThemeSwitch() {
  const current = theme.value;
  const next = nextTheme(current);
  return (
    <button
      type="button"
      class="button small theme-switch"
      data-testid="theme-switch"
      data-theme-choice={current}
      title={`Colour theme: ${LABELS[current]}. Click for ${LABELS[next]}.`}
      onClick={() => setTheme(next)}
    >
      <span aria-hidden="true">{ICONS[current]} </span>
      <span class="wide-only">Theme: </span>
      {LABELS[current]}
    </button>
  );
}

export { ThemeSwitch };
