// The top bar's switch for desktop notifications of errors that arrive while the tab is hidden.
import { notificationsSupported, notifyEnabled, notifyProblem, setNotify } from "../state/notify";

/** A toggle button; absent where the browser cannot notify. */
function NotifySwitch() {
  if (!notificationsSupported) return null;
  const on = notifyEnabled.value;
  const problem = notifyProblem.value;
  return (
    <button
      type="button"
      class="button small"
      data-testid="notify-switch"
      aria-pressed={on}
      title={problem ?? (on ? "Desktop notifications on: click to stop them" : "Notify me of new errors while this tab is hidden")}
      onClick={() => void setNotify(!on)}
    >
      Notify
      <span class="visually-hidden">{on ? " (on)" : " (off)"}</span>
    </button>
  );
}

export { NotifySwitch };
