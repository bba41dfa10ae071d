// Shown when the broker answers 401: a plain form POST to /login, which sets the session
// cookie and redirects back to the dashboard.

/** The token login form. */
function LoginForm() {
  return (
    <section class="panel login" aria-labelledby="login-title">
      <h1 id="login-title">Sign in</h1>
      <p>
        This dashboard can run code in your app processes, so it needs the broker's token. Open the login URL the
        broker printed when it started, or paste its token here.
      </p>
      <form method="post" action="/login" class="login-form">
        <label for="login-token">Token</label>
        <input id="login-token" name="token" type="password" required autocomplete="current-password" autofocus />
        <button type="submit" class="button primary">
          Sign in
        </button>
      </form>
    </section>
  );
}

export { LoginForm };
