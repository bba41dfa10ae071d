// The banner shown while the broker's store cannot write (a full disk): what was not stored.
import { storeProblem } from "../state/storeHealth";

/** Nothing while the store writes; otherwise what could not be stored, and why. */
function StoreBanner() {
  const problem = storeProblem.value;
  if (problem === null) return null;
  return (
    <div class="store-banner" role="alert" data-testid="store-banner">
      {problem}
    </div>
  );
}

export { StoreBanner };
