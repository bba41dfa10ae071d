// The colour theme: "system" follows prefers-color-scheme; "light" or "dark" pins it. The
// choice is kept in localStorage and applied as data-theme on <html> (app.css reads it).
import { effect, signal } from "@preact/signals";

/** What the user picked. */
type ThemeChoice = "system" | "light" | "dark";

const STORAGE_KEY = "debugbroker:theme";
const CHOICES: readonly ThemeChoice[] = ["system", "light", "dark"];

function isChoice(value: unknown): value is ThemeChoice {
  return typeof value === "string" && (CHOICES as readonly string[]).includes(value);
}

function storedChoice(): ThemeChoice {
  try {
    const value = localStorage.getItem(STORAGE_KEY);
    return isChoice(value) ? value : "system";
  } catch {
    return "system"; // storage disabled: follow the system
  }
}

/** The current choice. */
const theme = signal<ThemeChoice>(storedChoice());

/** Pick a theme and remember it. */
function setTheme(choice: ThemeChoice): void {
  theme.value = choice;
  try {
    if (choice === "system") localStorage.removeItem(STORAGE_KEY);
    else localStorage.setItem(STORAGE_KEY, choice);
  } catch {
    // not remembered, still applied
  }
}

/** The choice after `choice` in the switch's cycle: system → light → dark → system. */
function nextTheme(choice: ThemeChoice): ThemeChoice {
  return CHOICES[(CHOICES.indexOf(choice) + 1) % CHOICES.length] ?? "system";
}

effect(() => {
  const root = document.documentElement;
  if (theme.value === "system") delete root.dataset.theme;
  else root.dataset.theme = theme.value;
});

// Another tab changed the theme: follow it.
window.addEventListener("storage", (event) => {
  if (event.key === STORAGE_KEY) theme.value = isChoice(event.newValue) ? event.newValue : "system";
});

export { nextTheme, setTheme, theme, type ThemeChoice };
