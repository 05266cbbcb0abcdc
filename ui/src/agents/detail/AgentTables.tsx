// The agent's runs, orders and trades, newest first, a page at a time (the API's cursors, walked back and forth).
import { useId, useState, type ReactNode } from "react";
import { Money } from "../../money/Money";
import { utcTime } from "../../format/time";
import { OrderCells, OrderHeads, TradeCells, TradeHeads } from "../../trading/cells";
import { orderTick } from "./format";
import {
  TABLE_PAGE_SIZE,
  useAgentOrders,
  useAgentRuns,
  useAgentTrades,
  useCursorPages,
  type OrderStatus,
} from "./queries";

interface PageQuery {
  isPending: boolean;
  isError: boolean;
  isPlaceholderData: boolean;
  error: Error | null;
  data?: { items: unknown[]; next_cursor: string | null };
}

/**
 * A titled, scrollable table with the state of its query and the pager under it. Newest first unless `oldestFirst`
 * (the audit timeline), which only changes the wording: the first page is always where the cursors start.
 */
export function Listing({
  title,
  what,
  query,
  pages,
  filter,
  head,
  children,
  pageSize = TABLE_PAGE_SIZE,
  oldestFirst = false,
  className,
}: {
  title: string;
  what: string;
  query: PageQuery;
  pages: ReturnType<typeof useCursorPages>;
  filter?: ReactNode;
  head: ReactNode;
  children: ReactNode;
  pageSize?: number;
  oldestFirst?: boolean;
  className?: string;
}) {
  const id = useId();
  const next = query.data?.next_cursor ?? null;
  const [back, forward] = oldestFirst ? ["Older", "Newer"] : ["Newer", "Older"];
  return (
    <section aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {filter}
      {query.isPending && <p role="status">Loading {what}…</p>}
      {query.isError && (
        <p role="alert" className="error">
          Could not load {what}: {query.error?.message}
        </p>
      )}
      {query.data && query.data.items.length === 0 && pages.page === 1 && <p className="empty">No {what} yet.</p>}
      {query.data && query.data.items.length > 0 && (
        <>
          {/* Outside the scrolling box (a caption would scroll away on a phone), and the table's name. */}
          <p id={`${id}-caption`} className="caption">
            {title}, {oldestFirst ? "oldest" : "newest"} first: page {pages.page} ({pageSize} a page); times UTC
          </p>
          <div className="scroll" tabIndex={0} role="region" aria-label={`${title}, page ${pages.page}`}>
            <table
              className={className ? `list ${className}` : "list"}
              aria-labelledby={`${id}-caption`}
              aria-busy={query.isPlaceholderData || undefined}
            >
              <thead>{head}</thead>
              <tbody>{children}</tbody>
            </table>
          </div>
        </>
      )}
      {(pages.page > 1 || next) && (
        <nav className="pager" aria-label={`${title} pages`}>
          <button type="button" className="secondary" onClick={pages.newer} disabled={pages.page === 1}>
            {back} {what}
          </button>
          <button
            type="button"
            className="secondary"
            onClick={() => next && pages.older(next)}
            disabled={!next || query.isPlaceholderData}
          >
            {forward} {what}
          </button>
        </nav>
      )}
    </section>
  );
}

export function RunsTable({ agentId }: { agentId: string }) {
  const pages = useCursorPages();
  const runs = useAgentRuns(agentId, pages.cursor);
  return (
    <Listing
      title="Runs"
      what="runs"
      query={runs}
      pages={pages}
      head={
        <tr>
          <th scope="col">Session/tick</th>
          <th scope="col">Completed</th>
          <th scope="col" className="num">Observed price</th>
          <th scope="col">Outcome</th>
          <th scope="col" className="num">Late</th>
        </tr>
      }
    >
      {runs.data?.items.map((run) => (
        <tr key={`${run.session}-${run.tick_no}`}>
          <th scope="row" className="num">
            {run.session}/{run.tick_no}
          </th>
          <td className="num">{utcTime(run.completed_at)}</td>
          <td className="num">
            <Money value={run.observation.price} />
          </td>
          <td>
            {run.outcome === "signalled" && run.signal ? (
              <>
                signalled{" "}
                <span className={`side side-${run.signal.side}`}>
                  {run.signal.side} {run.signal.qty}
                </span>
              </>
            ) : run.outcome === "skipped" && run.waiting_for_order ? (
              <span title={run.waiting_for_order}>skipped: order {orderTick(run.waiting_for_order)} not filled yet</span>
            ) : (
              run.outcome
            )}
          </td>
          <td className="num">{run.lateness_ms} ms</td>
        </tr>
      ))}
    </Listing>
  );
}

const ORDER_FILTERS: { value: OrderStatus | ""; label: string }[] = [
  { value: "", label: "All" },
  { value: "accepted", label: "Open (accepted)" },
  { value: "filled", label: "Filled" },
  { value: "rejected", label: "Rejected" },
];

export function OrdersTable({ agentId }: { agentId: string }) {
  const pages = useCursorPages();
  const filterId = useId();
  const [status, setStatus] = useState<OrderStatus | undefined>(undefined);
  // A new filter starts again from the first page (the cursors walked belong to the old one).
  const choose = (value: string) => {
    setStatus(value === "" ? undefined : (value as OrderStatus));
    pages.reset();
  };
  const orders = useAgentOrders(agentId, pages.cursor, status);
  return (
    <Listing
      title="Orders"
      what="orders"
      query={orders}
      pages={pages}
      filter={
        <p className="filter">
          <label htmlFor={filterId}>Status</label>{" "}
          <select id={filterId} value={status ?? ""} onChange={(event) => choose(event.target.value)}>
            {ORDER_FILTERS.map((filter) => (
              <option key={filter.value} value={filter.value}>
                {filter.label}
              </option>
            ))}
          </select>
        </p>
      }
      head={
        <tr>
          <th scope="col">Session/tick</th>
          <th scope="col">Placed</th>
          <OrderHeads />
        </tr>
      }
    >
      {orders.data?.items.map((order) => (
        <tr key={order.order_id}>
          <th scope="row" className="num" title={order.order_id}>
            {orderTick(order.order_id)}
          </th>
          <td className="num">{utcTime(order.created_at)}</td>
          <OrderCells order={order} />
        </tr>
      ))}
    </Listing>
  );
}

export function TradesTable({ agentId }: { agentId: string }) {
  const pages = useCursorPages();
  const trades = useAgentTrades(agentId, pages.cursor);
  return (
    <Listing
      title="Trades"
      what="trades"
      query={trades}
      pages={pages}
      head={
        <tr>
          <th scope="col">Session/tick</th>
          <th scope="col">Filled</th>
          <TradeHeads />
        </tr>
      }
    >
      {trades.data?.items.map((trade) => (
        <tr key={trade.trade_id}>
          <th scope="row" className="num" title={trade.trade_id}>
            {orderTick(trade.order_id)}
          </th>
          <td className="num">{utcTime(trade.filled_at)}</td>
          <TradeCells trade={trade} />
        </tr>
      ))}
    </Listing>
  );
}
