// The page frame: top bar with the connection indicator, then the routed view (or the login
// form once the broker asked for it). Also keeps document.title in step.
import { useEffect } from "preact/hooks";
import { ConnectionStatus } from "../components/ConnectionStatus";
import { NotifySwitch } from "../components/NotifySwitch";
import { PresenceBar, PresenceMenu } from "../components/Presence";
import { HelpButton, Shortcuts } from "../components/Shortcuts";
import { StoreBanner } from "../components/StoreBanner";
import { ThemeSwitch } from "../components/ThemeSwitch";
import { TriageDialogHost } from "../components/TriageDialog";
import { reports, selected, unseen } from "../state/reports";
import { route } from "../state/route";
import { insecureLink, loginRequired, signOutNow } from "../state/session";
import { pageKey } from "../state/stepping";
import { GroupsView } from "./GroupsView";
import { LoginForm } from "./LoginForm";
import { ReportList } from "./ReportList";
import { ReportView } from "./ReportView";

function pageTitle(): string {
  const current = route.value;
  const count = unseen.value > 0 ? `(${unseen.value} new) ` : "";
  if (loginRequired.value) return "Sign in · debugbroker";
  if (current.name === "report") {
    const report = selected.value?.id === current.id ? selected.value.report : null;
    const what = report ? `${report.type_name}: ${report.message}`.slice(0, 80) : "Report";
    return `${count}${what} · debugbroker`;
  }
  const total = reports.value.length;
  return `${count}debugbroker · ${total} ${total === 1 ? "report" : "reports"}`;
}

/** The whole dashboard. */
function App() {
  const current = route.value;
  const title = pageTitle();
  useEffect(() => {
    document.title = title;
  }, [title]);

  let page;
  if (loginRequired.value) page = <LoginForm />;
  else if (current.name === "list") page = <ReportList />;
  else if (current.name === "groups") page = <GroupsView />;
  else if (current.name === "report") page = <ReportView key={pageKey(current.id)} id={current.id} frame={current.frame} />;
  else
    page = (
      <section class="panel">
        <h1>Not found</h1>
        <p>
          Nothing lives at <code>{current.path}</code>. <a href="#/">Back to the errors</a>.
        </p>
      </section>
    );

  return (
    <>
      <header class="topbar">
        <nav class="topbar-nav" aria-label="Dashboard">
          <a class="brand" href="#/">
            debugbroker
          </a>
          <a
            class="topbar-link"
            href="#/"
            aria-current={current.name === "groups" ? "page" : undefined}
            data-testid="groups-link"
            title="Errors grouped by fingerprint, with triage and search"
          >
            Errors
          </a>
          <a
            class="topbar-link"
            href="#/reports"
            aria-current={current.name === "list" ? "page" : undefined}
            data-testid="reports-link"
            title="Every single report, newest first"
          >
            All reports
          </a>
        </nav>
        <div class="topbar-tools">
          {!loginRequired.value && <PresenceMenu />}
          <ConnectionStatus />
          <ThemeSwitch />
          {!loginRequired.value && <NotifySwitch />}
          <HelpButton />
          {!loginRequired.value && (
            <button
              type="button"
              class="button small"
              data-testid="sign-out"
              title="End this browser's session at the broker (every tab); the token signs in again"
              onClick={() => void signOutNow()}
            >
              Sign out
            </button>
          )}
        </div>
      </header>
      {!loginRequired.value && <StoreBanner />}
      {insecureLink.value && !loginRequired.value && (
        <div class="link-warning" role="alert" data-testid="insecure-link-warning">
          The agent link is not encrypted (<code>--insecure-plaintext</code>): anyone on the network
          can read reports and pose as this broker. Use it only on a network you control.
        </div>
      )}
      {!loginRequired.value && <PresenceBar />}
      <main>{page}</main>
      <Shortcuts />
      {!loginRequired.value && <TriageDialogHost />}
    </>
  );
}

export { App };
