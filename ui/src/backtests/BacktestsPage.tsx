// The backtests page: the signed-in user's backtests, newest first (GET /api/v1/backtests), with status, source,
// when it was requested, bars and return; a running one shows its progress (the listing has none, so its row reads
// the backtest itself, which polls while it runs). Traders and admins get a "New backtest" button.
import { useCanTrade } from "../auth/me";
import { Money } from "../money/Money";
import { followLink } from "../router";
import { formatInstant } from "../format/time";
import { formatCount, progressOf, progressText, sourceKindLabel, sourceLabel } from "./format";
import { isUnfinished, useBacktest, useBacktests, type Backtest } from "./queries";
import { useBacktestsStream } from "./stream";

export function BacktestsPage() {
  const canTrade = useCanTrade();
  return (
    <section aria-labelledby="backtests-title">
      <div className="page-head">
        <h1 id="backtests-title">Backtests</h1>
        {canTrade && (
          <a className="button" href="/backtests/new" onClick={followLink("/backtests/new")}>
            New backtest
          </a>
        )}
      </div>
      <BacktestList />
    </section>
  );
}

function BacktestList() {
  const backtests = useBacktests();
  useBacktestsStream();

  if (backtests.isPending) {
    return (
      <p role="status" aria-live="polite">
        Loading backtests…
      </p>
    );
  }
  if (backtests.isError) {
    return (
      <div role="alert" className="error">
        <p>Could not load your backtests: {backtests.error.message}</p>
        <button type="button" onClick={() => void backtests.refetch()}>
          Try again
        </button>
      </div>
    );
  }
  const items = backtests.data.pages.flatMap((page) => page.items);
  if (items.length === 0) {
    return (
      <p className="empty">
        You have no backtests yet. A backtest runs an agent&apos;s strategy over past prices: an uploaded CSV, a
        simulated range, or the prices a paper agent saw (which also checks that the backtest trades exactly like it).
      </p>
    );
  }
  return (
    <>
      <table className="agents backtests">
        <caption>Your backtests, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Agent</th>
            <th scope="col">Status</th>
            <th scope="col">Source</th>
            <th scope="col">Requested</th>
            <th scope="col" className="num">Bars</th>
            <th scope="col" className="num">Return</th>
          </tr>
        </thead>
        <tbody>
          {items.map((backtest) => (
            <BacktestRow key={backtest.backtest_id} listed={backtest} />
          ))}
        </tbody>
      </table>
      {backtests.hasNextPage && (
        <button
          type="button"
          onClick={() => void backtests.fetchNextPage()}
          disabled={backtests.isFetchingNextPage}
        >
          {backtests.isFetchingNextPage ? "Loading more backtests…" : "Show more backtests"}
        </button>
      )}
    </>
  );
}

function BacktestRow({ listed }: { listed: Backtest }) {
  // The listing has no progress (specs/03 §3): a row shows what the backtests stream last said about its backtest
  // (kept in that backtest's cache entry), else the listing.
  const detail = useBacktest(listed.backtest_id, { enabled: false });
  const backtest = detail.data ?? listed;
  const href = `/backtests/${backtest.backtest_id}`;
  return (
    <tr>
      <th scope="row" data-label="Agent">
        <a href={href} onClick={followLink(href)}>
          {backtest.config.name}
        </a>{" "}
        <span className="muted">{backtest.config.symbol}</span>
      </th>
      <td data-label="Status">
        <span className={`status status-${backtest.status}`}>{backtest.status}</span>
      </td>
      <td data-label="Source">
        <span title={sourceLabel(backtest.source)}>{sourceKindLabel(backtest.source)}</span>
      </td>
      <td data-label="Requested">
        <time dateTime={backtest.requested_at}>{formatInstant(backtest.requested_at)}</time>
      </td>
      <td data-label="Bars" className="num">
        <Bars backtest={backtest} />
      </td>
      <td data-label="Return" className="num">
        {backtest.summary ? (
          <Money value={backtest.summary.return_pct} suffix="%" signed />
        ) : (
          <span className="muted" aria-label="not available">
            —
          </span>
        )}
      </td>
    </tr>
  );
}

function Bars({ backtest }: { backtest: Backtest }) {
  if (backtest.summary) return <>{formatCount(backtest.summary.bars)}</>;
  if (!isUnfinished(backtest.status)) {
    return (
      <span className="muted" aria-label="not available">
        —
      </span>
    );
  }
  const progress = progressOf(backtest);
  if (!progress) return <span className="muted">{backtest.status === "requested" ? "waiting" : "starting"}</span>;
  const text = progressText(progress);
  return (
    <span className="progress-cell">
      <progress
        value={progress.percent === null ? undefined : progress.done}
        max={progress.total || undefined}
        aria-label={`Progress of ${backtest.config.name}`}
        aria-valuetext={text}
      />
      <span>{text}</span>
    </span>
  );
}
