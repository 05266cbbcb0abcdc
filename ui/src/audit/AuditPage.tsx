// The audit page (/agents/<id>/audit): the agent's hash chain checked from genesis by the server (the replay CLI's
// verifier), and its events as stored, oldest first, each with its correlation id and actor, its payload a click away.
import { Fragment, useId, useState } from "react";
import { ApiError } from "../api/client";
import { Listing } from "../agents/detail/AgentTables";
import { useAgent, useCursorPages } from "../agents/detail/queries";
import { orderTick } from "../agents/detail/format";
import { utcTime } from "../format/time";
import { followLink } from "../router";
import { EVENTS_PAGE_SIZE, useAgentChain, useAgentEvents, type ChainCheck, type EventEnvelope } from "./queries";

/** Fields of a payload the summary shows at most (the row stays short; the rest is in the expanded JSON). */
const SUMMARY_FIELDS = 3;
/** Characters of one summarised value. */
const SUMMARY_VALUE_CHARS = 24;
/** Fields that say most about an event, shown first when present (the stored payload's key order is the store's). */
const SUMMARY_FIRST = ["name", "session", "tick_no", "side", "qty", "price", "fill_price", "fee", "reason_code", "reason"];

/** Payload fields the row already shows elsewhere. */
const OMITTED = ["agent_id", "correlation_id"];

/**
 * The payload's telling scalar fields as "name value · …" (the payload is `{"<EventType>": {...}}`, as stored). Left
 * out: the agent's id (the page's own), the correlation id (a column of its own), instants (the row has its time);
 * order ids are shown as their session/tick.
 */
export function payloadSummary(payload: unknown): string {
  const inner =
    payload && typeof payload === "object" ? Object.values(payload as Record<string, unknown>)[0] : undefined;
  if (!inner || typeof inner !== "object") return "";
  const rank = (name: string) => {
    const i = SUMMARY_FIRST.indexOf(name);
    return i === -1 ? SUMMARY_FIRST.length : i;
  };
  return Object.entries(inner as Record<string, unknown>)
    .filter(([name, value]) => ["string", "number", "boolean"].includes(typeof value) && !OMITTED.includes(name))
    .filter(([name]) => !name.endsWith("_at"))
    .sort(([a], [b]) => rank(a) - rank(b))
    .slice(0, SUMMARY_FIELDS)
    .map(([name, value]) => {
      if (name === "order_id") return `order ${orderTick(String(value))}`;
      const text = String(value);
      return `${name} ${text.length > SUMMARY_VALUE_CHARS ? `${text.slice(0, SUMMARY_VALUE_CHARS - 1)}…` : text}`;
    })
    .join(" · ");
}

export function AuditPage({ agentId }: { agentId: string }) {
  const agent = useAgent(agentId);
  const missing = agent.error instanceof ApiError && agent.error.status === 404;
  return (
    <article className="agent audit" aria-labelledby="audit-title">
      <p className="crumb">
        <a href={`/agents/${agentId}`} onClick={followLink(`/agents/${agentId}`)}>
          ← {agent.data?.name ?? "Agent"}
        </a>
      </p>
      <h1 id="audit-title">{agent.data ? `Audit: ${agent.data.name}` : "Audit"}</h1>
      {missing ? (
        <p role="alert" className="error">
          There is no agent with this id that you can see.
        </p>
      ) : (
        <>
          <ChainSection agentId={agentId} />
          <Timeline agentId={agentId} />
        </>
      )}
    </article>
  );
}

function ChainSection({ agentId }: { agentId: string }) {
  const chain = useAgentChain(agentId);
  return (
    <section aria-labelledby="chain-title" className="chain">
      <h2 id="chain-title">Hash chain</h2>
      {chain.isPending && <p role="status">Checking the hash chain…</p>}
      {chain.isError && (
        <p role="alert" className="error">
          Could not check the hash chain: {chain.error.message}
        </p>
      )}
      {chain.data && <ChainVerdict check={chain.data} />}
      {!chain.isPending && (
        <button type="button" className="secondary" onClick={() => void chain.refetch()} disabled={chain.isFetching}>
          {chain.isFetching ? "Checking…" : "Check again"}
        </button>
      )}
    </section>
  );
}

function ChainVerdict({ check }: { check: ChainCheck }) {
  if (check.verified) {
    return (
      <div role="status" className="verdict verdict-ok">
        <p className="verdict-line">
          <span aria-hidden="true">✓ </span>Chain verified: {check.events} {check.events === 1 ? "event" : "events"}{" "}
          from genesis
        </p>
        {check.head_hash && (
          <p className="hash">
            Head hash <code>{check.head_hash}</code>
          </p>
        )}
      </div>
    );
  }
  const count = check.problems.length;
  return (
    <div role="alert" className="verdict verdict-broken">
      <p className="verdict-line">
        <span aria-hidden="true">✗ </span>Chain broken: {count} {count === 1 ? "problem" : "problems"}
        {check.problems_truncated ? " (and more, list truncated)" : ""} in {check.events} events
      </p>
      <ul>
        {check.problems.map((problem) => (
          <li key={`${problem.sequence}-${problem.problem}`}>
            <strong>Sequence {problem.sequence}</strong>: {problem.detail}
          </li>
        ))}
      </ul>
    </div>
  );
}

function Timeline({ agentId }: { agentId: string }) {
  const pages = useCursorPages();
  const events = useAgentEvents(agentId, pages.cursor);
  return (
    <Listing
      title="Events"
      what="events"
      query={events}
      pages={pages}
      pageSize={EVENTS_PAGE_SIZE}
      oldestFirst
      className="timeline"
      head={
        <tr>
          <th scope="col" className="num">Seq</th>
          <th scope="col">Recorded</th>
          <th scope="col">Event</th>
          <th scope="col">Correlation id</th>
          <th scope="col">Actor</th>
          <th scope="col">Payload</th>
        </tr>
      }
    >
      {events.data?.items.map((event) => <EventRow key={event.event_id} event={event} />)}
    </Listing>
  );
}

function EventRow({ event }: { event: EventEnvelope }) {
  const [open, setOpen] = useState(false);
  const detailId = useId();
  return (
    <Fragment>
      <tr>
        <th scope="row" className="num">
          {event.sequence}
        </th>
        <td className="num">{utcTime(event.recorded_at)}</td>
        <td>{event.event_type}</td>
        <td>
          <code>{event.metadata.correlation_id}</code>
        </td>
        <td>{event.metadata.actor}</td>
        <td className="payload">
          <button
            type="button"
            className="link inline"
            aria-expanded={open}
            aria-controls={open ? detailId : undefined}
            aria-label={`Payload of event ${event.sequence}`}
            onClick={() => setOpen((shown) => !shown)}
          >
            {payloadSummary(event.payload) || event.event_type}
          </button>
        </td>
      </tr>
      {open && (
        <tr id={detailId} className="payload-json">
          <td colSpan={6}>
            <pre>{JSON.stringify(event.payload, null, 2)}</pre>
            <p className="hash">
              Hash <code>{event.hash}</code> · event {event.event_id} · v{event.event_version} · log position{" "}
              {event.position.global_position}
            </p>
          </td>
        </tr>
      )}
    </Fragment>
  );
}
