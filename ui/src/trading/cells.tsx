// The cells of one trade and one order, as every table shows them (the agent page's and a backtest's): money as the
// API's decimal strings, the side and status as badges, a rejection's risk code with its sentence. Each table adds
// its own first columns (session/tick or the bar's time) and paging.
import type { Schemas } from "../api/client";
import { Money } from "../money/Money";

type Trade = Schemas["Trade"];
type Order = Schemas["Order"];

/** The header cells of `TradeCells`, in its order. */
export function TradeHeads() {
  return (
    <>
      <th scope="col">Side</th>
      <th scope="col" className="num">Qty</th>
      <th scope="col" className="num">Price</th>
      <th scope="col" className="num">Notional</th>
      <th scope="col" className="num">Fee</th>
      <th scope="col" className="num">Realized PnL</th>
    </>
  );
}

export function TradeCells({ trade }: { trade: Trade }) {
  return (
    <>
      <td>
        <span className={`side side-${trade.side}`}>{trade.side}</span>
      </td>
      <td className="num">
        <Money value={trade.qty} />
      </td>
      <td className="num">
        <Money value={trade.price} />
      </td>
      <td className="num">
        <Money value={trade.notional} />
      </td>
      <td className="num">
        <Money value={trade.fee} />
      </td>
      <td className="num">
        <Money value={trade.realized_pnl} signed />
      </td>
    </>
  );
}

/** The header cells of `OrderCells`, in its order. */
export function OrderHeads() {
  return (
    <>
      <th scope="col">Side</th>
      <th scope="col" className="num">Qty</th>
      <th scope="col">Status</th>
      <th scope="col" className="num">Observed price</th>
      <th scope="col" className="num">Fill price</th>
      <th scope="col" className="num">Fee</th>
      <th scope="col">Risk reason</th>
    </>
  );
}

export function OrderCells({ order }: { order: Order }) {
  return (
    <>
      <td>
        <span className={`side side-${order.side}`}>{order.side}</span>
      </td>
      <td className="num">
        <Money value={order.qty} />
      </td>
      <td>
        <span className={`status status-${order.status}`}>{order.status}</span>
      </td>
      <td className="num">
        <Money value={order.observation.price} />
      </td>
      <td className="num">
        <Money value={order.fill_price} />
      </td>
      <td className="num">
        <Money value={order.fee} />
      </td>
      <td className="reason">
        {order.status === "rejected" ? (
          <>
            <code>{order.reason_code}</code> {order.reason}
          </>
        ) : (
          <span className="muted">—</span>
        )}
      </td>
    </>
  );
}
