// Start a backtest (POST /api/v1/backtests): one of the user's agents over its own observations (the parity check),
// an uploaded CSV (sent inline, so within the API's 16 MiB request limit, checked here before sending) or a
// simulated range; optionally another fill model. A problem the API names a field of is shown at that field.
import { useId, useState, type ChangeEvent, type FormEvent, type ReactNode } from "react";
import { ApiError, type Agent } from "../api/client";
import { useAgents } from "../agents/queries";
import { useMe } from "../auth/me";
import { followLink, navigate } from "../router";
import { formatCount } from "./format";
import {
  exactBytes,
  formatBytes,
  MAX_REQUEST_BYTES,
  TooLargeError,
  useRequestBacktest,
  type BacktestRequest,
} from "./queries";

export type SourceKind = "observations" | "csv" | "sim";

/** The form's fields, each of which can carry the API's problem. */
type Field = "agent" | "source" | "csv" | "seed" | "from" | "to" | "step" | "slippage" | "fee";

/** The form field a problem's JSON pointer (`field`) names, if any. */
export function fieldOf(pointer: string | undefined): Field | null {
  switch (pointer) {
    case "/agent_id":
    case "/config":
    case "/source/agent_id":
      return "agent";
    case "/source":
    case "/source/kind":
      return "source";
    case "/source/data":
      return "csv";
    case "/source/seed":
      return "seed";
    case "/source/from":
      return "from";
    case "/source/to":
      return "to";
    case "/source/step_s":
      return "step";
    case "/fill_model":
    case "/fill_model/slippage_bps":
      return "slippage";
    case "/fill_model/fee_bps":
      return "fee";
    default:
      if (pointer?.startsWith("/config/")) return "agent";
      return null;
  }
}

/** A `datetime-local` value (read as UTC) as RFC 3339: "2026-01-01T00:00" → "2026-01-01T00:00:00Z"; null if invalid. */
export function utcInstant(local: string): string | null {
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2}(\.\d{1,3})?)?$/.exec(local.trim());
  if (!match) return null;
  const iso = `${match[1]}T${match[2]}${match[3] ?? ":00"}Z`;
  return Number.isNaN(Date.parse(iso)) ? null : iso;
}

/** How many bars a simulated range gives: bars close at from + k·step (k ≥ 1) up to `to`. */
export function simBars(from: string, to: string, stepS: number): number | null {
  const start = Date.parse(from);
  const end = Date.parse(to);
  if (Number.isNaN(start) || Number.isNaN(end) || !(stepS > 0) || end <= start) return null;
  return Math.floor((end - start) / 1000 / stepS);
}

export const MAX_SIM_BARS = 10_000_000;

interface CsvFile {
  name: string;
  size: number;
  text: string;
}

/** Reads a chosen file as UTF-8 text (FileReader: the file stays on this machine until the form is sent). */
function readText(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(typeof reader.result === "string" ? reader.result : "");
    reader.onerror = () => reject(reader.error ?? new Error("the browser could not read it"));
    reader.readAsText(file);
  });
}

export function NewBacktestPage() {
  const me = useMe();
  let body: ReactNode;
  if (me.isPending) {
    body = (
      <p role="status" aria-live="polite">
        Loading…
      </p>
    );
  } else if (me.data?.role === "viewer") {
    body = (
      <p className="empty">
        Your role is viewer: you can read backtests, and a trader can start them.{" "}
        <a href="/backtests" onClick={followLink("/backtests")}>
          Back to the backtests
        </a>
      </p>
    );
  } else {
    body = <NewBacktestForm />;
  }
  return (
    <section aria-labelledby="new-backtest-title" className="form-page">
      <h1 id="new-backtest-title">New backtest</h1>
      {body}
    </section>
  );
}

function NewBacktestForm() {
  const agents = useAgents();
  const request = useRequestBacktest();
  const id = useId();
  const fieldId = (field: Field) => `${id}-${field}`;

  const [agentId, setAgentId] = useState(() => new URLSearchParams(window.location.search).get("agent") ?? "");
  const [kind, setKind] = useState<SourceKind>("observations");
  const [csv, setCsv] = useState<CsvFile | null>(null);
  const [reading, setReading] = useState(false);
  const [seed, setSeed] = useState("42");
  const [from, setFrom] = useState("2026-01-01T00:00:00");
  const [to, setTo] = useState("2026-01-02T00:00:00");
  const [step, setStep] = useState("60");
  const [slippage, setSlippage] = useState("");
  const [fee, setFee] = useState("");
  const [errors, setErrors] = useState<Partial<Record<Field, string>>>({});
  const [formError, setFormError] = useState<string | null>(null);
  /** Set when a submit was refused for its fields (the summary line above the form). */
  const [refused, setRefused] = useState(false);

  function chooseKind(next: SourceKind) {
    setKind(next);
    setErrors({});
    setRefused(false);
  }

  function clearError(field: Field) {
    setErrors((current) => ({ ...current, [field]: undefined }));
  }

  async function chooseFile(event: ChangeEvent<HTMLInputElement>) {
    const file = event.target.files?.[0];
    setCsv(null);
    clearError("csv");
    if (!file) return;
    if (file.size > MAX_REQUEST_BYTES) {
      // Refused before reading: the API would answer 413 after the whole upload.
      setErrors((current) => ({
        ...current,
        csv:
          `${file.name} is ${formatBytes(file.size)} (${exactBytes(file.size)}): over the 16 MiB limit of one request ` +
          "to the API. Backtest bigger files with strom backtest --csv.",
      }));
      return;
    }
    if (file.size === 0) {
      setErrors((current) => ({ ...current, csv: `${file.name} is empty.` }));
      return;
    }
    setReading(true);
    try {
      setCsv({ name: file.name, size: file.size, text: await readText(file) });
    } catch (error) {
      setErrors((current) => ({
        ...current,
        csv: `Could not read ${file.name}: ${error instanceof Error ? error.message : String(error)}`,
      }));
    } finally {
      setReading(false);
    }
  }

  /** The request body, or the problems that keep it from being sent. */
  function build(): { body: BacktestRequest } | { problems: Partial<Record<Field, string>> } {
    const problems: Partial<Record<Field, string>> = {};
    if (!agentId) problems.agent = "Choose the agent to backtest.";
    let source: BacktestRequest["source"] | null = null;
    if (kind === "observations") {
      source = { kind: "observations", agent_id: agentId };
    } else if (kind === "csv") {
      if (!csv) problems.csv = problems.csv ?? errors.csv ?? "Choose a CSV file.";
      else if (csv.text.trim() === "") problems.csv = `${csv.name} has no text.`;
      else source = { kind: "csv", data: csv.text };
    } else {
      const seedValue = Number(seed);
      if (!/^\d+$/.test(seed.trim())) problems.seed = "The seed is a whole number, 0 or more.";
      else if (!Number.isSafeInteger(seedValue)) {
        problems.seed = `A browser sends seeds up to ${Number.MAX_SAFE_INTEGER} exactly; choose a smaller one.`;
      }
      const fromUtc = utcInstant(from);
      const toUtc = utcInstant(to);
      if (!fromUtc) problems.from = "Give the start as a date and time (UTC).";
      if (!toUtc) problems.to = "Give the end as a date and time (UTC).";
      const stepValue = Number(step);
      if (!/^\d+$/.test(step.trim()) || stepValue < 1 || stepValue > 86_400) {
        problems.step = "The step is a whole number of seconds from 1 to 86400.";
      }
      if (fromUtc && toUtc && Date.parse(toUtc) <= Date.parse(fromUtc)) problems.to = "The end must be after the start.";
      const count = fromUtc && toUtc && !problems.step ? simBars(fromUtc, toUtc, stepValue) : null;
      if (count !== null && count > MAX_SIM_BARS) {
        problems.to = `That range makes ${formatCount(count)} bars; the API runs at most ${formatCount(MAX_SIM_BARS)}.`;
      }
      if (Object.keys(problems).length === 0 && fromUtc && toUtc) {
        source = { kind: "sim", seed: seedValue, from: fromUtc, to: toUtc, step_s: stepValue };
      }
    }
    const bps = /^(0|[1-9][0-9]{0,3})(\.[0-9]+)?$/;
    const fillModel = slippage.trim() !== "" || fee.trim() !== "";
    if (fillModel) {
      if (!bps.test(slippage.trim())) problems.slippage = "Slippage in basis points, from 0 to under 10000 (e.g. 5 or 2.5).";
      if (!bps.test(fee.trim())) problems.fee = "Fee in basis points, from 0 to under 10000 (e.g. 10 or 7.5).";
    }
    if (Object.keys(problems).length > 0 || !source) return { problems };
    // Observations: with no agent_id the API snapshots that agent's config, as the parity check needs.
    const body: BacktestRequest = kind === "observations" ? { source } : { agent_id: agentId, source };
    if (fillModel) body.fill_model = { slippage_bps: slippage.trim(), fee_bps: fee.trim() };
    return { body };
  }

  function showProblems(problems: Partial<Record<Field, string>>) {
    setErrors(problems);
    setRefused(true);
    const first = (Object.keys(problems) as Field[])[0];
    if (first) document.getElementById(first === "source" ? `${id}-kind-${kind}` : fieldId(first))?.focus();
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    setFormError(null);
    const built = build();
    if ("problems" in built) {
      showProblems(built.problems);
      return;
    }
    setErrors({});
    request.mutate(built.body, {
      onSuccess: (backtest) => navigate(`/backtests/${backtest.backtest_id}`),
      onError: (error) => {
        if (error instanceof TooLargeError) {
          showProblems({ csv: error.message });
          return;
        }
        const field = explainField(error);
        if (field) showProblems({ [field.field]: field.message });
        else setFormError(explain(error));
      },
    });
  }

  function explainField(error: Error): { field: Field; message: string } | null {
    if (!(error instanceof ApiError)) return null;
    if (error.status === 413) {
      return { field: "csv", message: "The API refused the request as larger than 16 MiB. Backtest bigger files with strom backtest --csv." };
    }
    if (error.problem?.code === "agent_not_found") {
      return { field: "agent", message: "The API does not know this agent (or it is not yours)." };
    }
    const field = fieldOf(error.problem?.field);
    return field ? { field, message: error.message } : null;
  }

  const agentItems: Agent[] = agents.data?.pages.flatMap((page) => page.items) ?? [];
  const bars = kind === "sim" ? simBars(utcInstant(from) ?? "", utcInstant(to) ?? "", Number(step)) : null;
  const pending = request.isPending;

  const describe = (field: Field, hint?: string) =>
    [hint, errors[field] ? `${fieldId(field)}-error` : undefined].filter(Boolean).join(" ") || undefined;
  // The CSV's problem appears as soon as a file is chosen, so it is announced (an alert); the others follow a submit.
  const fieldError = (field: Field) =>
    errors[field] ? (
      <p id={`${fieldId(field)}-error`} className="field-error" role={field === "csv" ? "alert" : undefined}>
        {errors[field]}
      </p>
    ) : null;

  return (
    <form className="backtest-form" onSubmit={submit} noValidate>
      {formError && (
        <p role="alert" className="error">
          {formError}
        </p>
      )}
      {refused && Object.values(errors).some(Boolean) && (
        <p role="alert" className="error">
          The backtest was not started: see the highlighted fields.
        </p>
      )}

      <div className="field">
        <label htmlFor={fieldId("agent")}>Agent</label>
        {agents.isPending ? (
          <p role="status">Loading your agents…</p>
        ) : agents.isError ? (
          <div role="alert" className="error">
            <p>Could not load your agents: {agents.error.message}</p>
            <button type="button" onClick={() => void agents.refetch()}>
              Try again
            </button>
          </div>
        ) : agentItems.length === 0 ? (
          <p className="empty">
            You have no agents to backtest.{" "}
            <a href="/agents" onClick={followLink("/agents")}>
              Go to your agents
            </a>
          </p>
        ) : (
          <>
            <select
              id={fieldId("agent")}
              value={agentId}
              onChange={(event) => {
                setAgentId(event.target.value);
                clearError("agent");
              }}
              aria-invalid={errors.agent ? true : undefined}
              aria-describedby={describe("agent", `${fieldId("agent")}-hint`)}
              required
            >
              <option value="">Choose an agent…</option>
              {agentItems.map((agent) => (
                <option key={agent.agent_id} value={agent.agent_id}>
                  {agent.name} ({agent.symbol}, {agent.strategy.kind})
                </option>
              ))}
            </select>
            <p id={`${fieldId("agent")}-hint`} className="hint">
              The backtest runs this agent&apos;s current configuration (strategy, risk limits, starting cash).
            </p>
            {agents.hasNextPage && (
              <button
                type="button"
                className="secondary"
                onClick={() => void agents.fetchNextPage()}
                disabled={agents.isFetchingNextPage}
              >
                {agents.isFetchingNextPage ? "Loading more agents…" : "List more agents"}
              </button>
            )}
          </>
        )}
        {fieldError("agent")}
      </div>

      <fieldset className="field" aria-describedby={errors.source ? `${fieldId("source")}-error` : undefined}>
        <legend>Prices to run over</legend>
        <SourceChoice id={id} kind={kind} value="observations" onChange={chooseKind}>
          The agent&apos;s own observations: the prices its paper runs saw. The result says whether the backtest traded
          exactly as the agent did (parity). Stop the agent first so its last order has filled.
        </SourceChoice>
        <SourceChoice id={id} kind={kind} value="csv" onChange={chooseKind}>
          A CSV file of bars (<code>ts,open,high,low,close,volume</code>, or an exchange&apos;s kline export).
        </SourceChoice>
        <SourceChoice id={id} kind={kind} value="sim" onChange={chooseKind}>
          Simulated prices: the simulator&apos;s bars for a seed and a time range.
        </SourceChoice>
        {fieldError("source")}
      </fieldset>

      {kind === "csv" && (
        <div className="field">
          <label htmlFor={fieldId("csv")}>CSV file</label>
          <input
            id={fieldId("csv")}
            type="file"
            accept=".csv,text/csv,text/plain"
            onChange={(event) => void chooseFile(event)}
            aria-invalid={errors.csv ? true : undefined}
            aria-describedby={describe("csv", `${fieldId("csv")}-hint`)}
          />
          <p id={`${fieldId("csv")}-hint`} className="hint">
            At most 16 MiB: the file travels inside the request, and the API takes at most 16 MiB in one (about 200,000
            one-minute bars). Backtest bigger files with <code>strom backtest --csv</code>.
          </p>
          {reading && <p role="status">Reading the file…</p>}
          {csv && (
            <p className="hint">
              {csv.name}: {formatBytes(csv.size)}, read and ready to send.
            </p>
          )}
          {fieldError("csv")}
        </div>
      )}

      {kind === "sim" && (
        <div className="field-grid">
          <div className="field">
            <label htmlFor={fieldId("seed")}>Seed</label>
            <input
              id={fieldId("seed")}
              inputMode="numeric"
              value={seed}
              onChange={(event) => {
                setSeed(event.target.value);
                clearError("seed");
              }}
              aria-invalid={errors.seed ? true : undefined}
              aria-describedby={describe("seed")}
            />
            {fieldError("seed")}
          </div>
          <div className="field">
            <label htmlFor={fieldId("from")}>From (UTC)</label>
            <input
              id={fieldId("from")}
              type="datetime-local"
              step={1}
              value={from}
              onChange={(event) => {
                setFrom(event.target.value);
                clearError("from");
              }}
              aria-invalid={errors.from ? true : undefined}
              aria-describedby={describe("from")}
            />
            {fieldError("from")}
          </div>
          <div className="field">
            <label htmlFor={fieldId("to")}>To (UTC)</label>
            <input
              id={fieldId("to")}
              type="datetime-local"
              step={1}
              value={to}
              onChange={(event) => {
                setTo(event.target.value);
                clearError("to");
              }}
              aria-invalid={errors.to ? true : undefined}
              aria-describedby={describe("to", `${id}-bars`)}
            />
            {fieldError("to")}
          </div>
          <div className="field">
            <label htmlFor={fieldId("step")}>Bar length (seconds)</label>
            <input
              id={fieldId("step")}
              type="number"
              min={1}
              max={86400}
              value={step}
              onChange={(event) => {
                setStep(event.target.value);
                clearError("step");
              }}
              aria-invalid={errors.step ? true : undefined}
              aria-describedby={describe("step")}
            />
            {fieldError("step")}
          </div>
          <p id={`${id}-bars`} className={bars !== null && bars > MAX_SIM_BARS ? "hint error" : "hint"}>
            {bars === null
              ? "Bars close at From + one bar length, and so on up to To."
              : `${formatCount(bars)} bars${bars > MAX_SIM_BARS ? `: over the API's limit of ${formatCount(MAX_SIM_BARS)}` : ""}.`}
          </p>
        </div>
      )}

      <fieldset className="field">
        <legend>Fill model (optional)</legend>
        <p className="hint" id={`${id}-fill-hint`}>
          Leave both empty for the server&apos;s paper fill model, the one paper agents trade with (parity needs it).
        </p>
        <div className="field-grid">
          <div className="field">
            <label htmlFor={fieldId("slippage")}>Slippage (bps)</label>
            <input
              id={fieldId("slippage")}
              inputMode="decimal"
              value={slippage}
              onChange={(event) => {
                setSlippage(event.target.value);
                clearError("slippage");
              }}
              aria-invalid={errors.slippage ? true : undefined}
              aria-describedby={describe("slippage", `${id}-fill-hint`)}
            />
            {fieldError("slippage")}
          </div>
          <div className="field">
            <label htmlFor={fieldId("fee")}>Fee (bps)</label>
            <input
              id={fieldId("fee")}
              inputMode="decimal"
              value={fee}
              onChange={(event) => {
                setFee(event.target.value);
                clearError("fee");
              }}
              aria-invalid={errors.fee ? true : undefined}
              aria-describedby={describe("fee", `${id}-fill-hint`)}
            />
            {fieldError("fee")}
          </div>
        </div>
      </fieldset>

      <div className="actions">
        <button type="submit" disabled={pending || reading}>
          {pending ? "Starting…" : "Start backtest"}
        </button>
        <a href="/backtests" onClick={followLink("/backtests")}>
          Cancel
        </a>
      </div>
    </form>
  );
}

function SourceChoice({
  id,
  kind,
  value,
  onChange,
  children,
}: {
  id: string;
  kind: SourceKind;
  value: SourceKind;
  onChange: (kind: SourceKind) => void;
  children: ReactNode;
}) {
  const label = { observations: "Its own observations", csv: "Uploaded CSV", sim: "Simulated range" }[value];
  return (
    <div className="choice">
      <input
        type="radio"
        id={`${id}-kind-${value}`}
        name={`${id}-kind`}
        value={value}
        checked={kind === value}
        onChange={() => onChange(value)}
        aria-describedby={`${id}-kind-${value}-hint`}
      />
      <label htmlFor={`${id}-kind-${value}`}>{label}</label>
      <p id={`${id}-kind-${value}-hint`} className="hint">
        {children}
      </p>
    </div>
  );
}

function explain(error: Error): string {
  if (error instanceof ApiError) {
    if (error.status === 403) return "Your role cannot start backtests (a trader can).";
    return `The API answered ${error.status}: ${error.message}`;
  }
  return `Could not reach the STROM API: ${error.message}`;
}
