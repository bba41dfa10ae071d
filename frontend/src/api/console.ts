// The console's evals and completions: over the dashboard's WebSocket when it is open and has
// proved the session (no HTTP request per eval), else over the HTTP API. A command the socket
// sent but lost (the broker restarted) is not sent again over HTTP: it may have run.
import { ApiError, apiErrorOf, completeInConsole, evaluateInConsole, type ConsolePath } from "./client";
import { CommandLost, sendCommand, type CommandAnswer } from "./socket";
import type { CompleteResult, EvalAnswer } from "./types";

async function answerOf<T>(sent: Promise<CommandAnswer>, overHttp: () => Promise<T>): Promise<T> {
  let answer: CommandAnswer;
  try {
    answer = await sent;
  } catch (error) {
    if (error instanceof CommandLost) throw new ApiError(0, error.message);
    throw error;
  }
  if (answer.status === 200) return answer.body as T;
  // The socket's session ended (a logout elsewhere): HTTP says so, and shows the login form.
  if (answer.status === 401) return overHttp();
  throw apiErrorOf(answer.status, answer.body);
}

/** Run `code` in a console as `author` (see evaluateInConsole for the HTTP route). */
function runEval(console: ConsolePath, code: string, interactive: boolean, author: string): Promise<EvalAnswer> {
  const overHttp = () => evaluateInConsole(console, code, interactive, author);
  const sent = sendCommand({ type: "eval", console, code, interactive, name: author });
  return sent === null ? overHttp() : answerOf(sent, overHttp);
}

/** Completions for the end of `text` in a console. */
function runCompletion(console: ConsolePath, text: string): Promise<CompleteResult> {
  const overHttp = () => completeInConsole(console, text);
  const sent = sendCommand({ type: "complete", console, text });
  return sent === null ? overHttp() : answerOf(sent, overHttp);
}

export { runCompletion, runEval };
