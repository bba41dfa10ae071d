// Entry point: render the dashboard and open the session with the broker.
import { render } from "preact";
import { startSession } from "./state/session";
import "./state/theme"; // applies the saved theme before the first paint of the app
import { App } from "./views/App";
import { prefetchRoutedReport } from "./views/ReportView";

const root = document.getElementById("app");
if (root !== null) {
  prefetchRoutedReport();
  render(<App />, root);
  void startSession();
}
