// Shown when the broker answers 401 (or this tab holds no session key): the token goes to
// POST /login (same origin, so the request carries the Origin the broker checks), which sets
// the session cookie and answers the session key; then the page reloads into the dashboard.
// A wrong token is reported in the form itself; so is a used or expired login link.
import { useState } from "preact/hooks";
import { loginNotice, signedOut, signIn } from "../state/session";

type Attempt = { state: "idle" } | { state: "sending" } | { state: "failed"; message: string };

/** The token login form. */
function LoginForm() {
  const [token, setToken] = useState("");
  const [attempt, setAttempt] = useState<Attempt>(
    loginNotice.value ? { state: "failed", message: loginNotice.value } : { state: "idle" },
  );

  async function submit(event: Event): Promise<void> {
    event.preventDefault();
    if (!token.trim() || attempt.state === "sending") return;
    setAttempt({ state: "sending" });
    const failure = await signIn(token.trim());
    if (failure === null) location.reload();
    else setAttempt({ state: "failed", message: failure });
  }

  return (
    <section class="panel login" aria-labelledby="login-title">
      <h1 id="login-title">Sign in</h1>
      <p>
        This dashboard can run code in your app processes, so it needs the broker's token. Open the login URL the
        broker printed when it started, or paste its token here.
      </p>
      <form method="post" action="/login" class="login-form" onSubmit={(event) => void submit(event)}>
        <label for="login-token">Token</label>
        <input
          id="login-token"
          name="token"
          type="password"
          required
          autocomplete="current-password"
          autofocus
          value={token}
          aria-invalid={attempt.state === "failed"}
          aria-describedby={attempt.state === "failed" ? "login-error" : undefined}
          onInput={(event) => setToken(event.currentTarget.value)}
        />
        <button type="submit" class="button primary" disabled={attempt.state === "sending"}>
          Sign in
        </button>
      </form>
      {attempt.state === "idle" && signedOut.value && (
        <p role="status" data-testid="signed-out">
          {signedOut.value}
        </p>
      )}
      {attempt.state === "failed" && (
        <p class="error" role="alert" id="login-error" data-testid="login-error">
          {attempt.message}
        </p>
      )}
    </section>
  );
}

export { LoginForm };
