// The agent wizard (/agents/new): name, symbol, a strategy from GET /api/v1/strategies with its parameters as the
// catalogue declares them (kind, bounds, defaults prefilled), tick frequency, risk limits, starting cash and seed;
// POST /api/v1/agents creates it and the page moves to the new agent's page. The API validates; the form only stops
// obvious slips (a required field left empty, letters in a number). A 422 names its field as a JSON pointer
// (specs/03-apis.md §2, e.g. /strategy/params/slow): its detail is shown at that field, anything else at the top.
// Decimals stay the strings the user typed; only integers (frequency, seed, integer parameters) go as JSON numbers.
import { useEffect, useId, useRef, useState, type FormEvent, type ReactNode } from "react";
import { ApiError, type Schemas } from "../api/client";
import { useMe } from "../auth/me";
import { followLink, navigate } from "../router";
import { useCreateAgent, useStrategies, type CreateAgentRequest } from "./queries";

type Strategy = Schemas["Strategy"];
type Kind = Strategy["kind"];

/** Errors by the JSON pointer of the field they belong to ("" = the top of the form). */
type Errors = Record<string, string>;

interface Draft {
  name: string;
  symbol: string;
  kind: Kind | "";
  /** Parameter text per strategy, so switching strategies back and forth keeps what was typed. */
  params: Partial<Record<Kind, Record<string, string>>>;
  frequency_s: string;
  starting_cash: string;
  max_position_qty: string;
  max_order_qty: string;
  max_notional: string;
  max_daily_loss: string;
  seed: string;
}

/** The API's risk defaults for a new agent (specs/03-apis.md §3 notes): left as they are, `risk` is not sent. */
const RISK_DEFAULTS = { max_position_qty: "1", max_order_qty: "1", max_notional: "", max_daily_loss: "" };

const EMPTY: Draft = {
  name: "",
  symbol: "BTC-USD",
  kind: "",
  params: {},
  frequency_s: "60",
  starting_cash: "10000",
  ...RISK_DEFAULTS,
  seed: "",
};

const INTEGER = /^[0-9]+$/;
const DECIMAL = /^[0-9]+(\.[0-9]+)?$/;

/** The form fields, by the JSON pointer the API names them with. */
const FIELDS = {
  name: "/name",
  symbol: "/symbol",
  kind: "/strategy/kind",
  frequency_s: "/frequency_s",
  starting_cash: "/starting_cash",
  max_position_qty: "/risk/max_position_qty",
  max_order_qty: "/risk/max_order_qty",
  max_notional: "/risk/max_notional",
  max_daily_loss: "/risk/max_daily_loss",
  seed: "/seed",
} as const;

const paramPointer = (name: string) => `/strategy/params/${name}`;

export function AgentWizard() {
  const me = useMe();
  const strategies = useStrategies();

  let body: ReactNode;
  if (me.isPending || strategies.isPending) {
    body = (
      <p role="status" aria-live="polite">
        Loading…
      </p>
    );
  } else if (me.isError || strategies.isError) {
    const error = me.error ?? strategies.error;
    body = (
      <div role="alert" className="error">
        <p>Could not load the wizard: {error?.message}</p>
        <button type="button" onClick={() => void (me.isError ? me.refetch() : strategies.refetch())}>
          Try again
        </button>
      </div>
    );
  } else if (me.data.role === "viewer") {
    body = <p className="empty">Your role (viewer) can read agents but not create them.</p>;
  } else {
    body = <WizardForm catalogue={strategies.data.items} />;
  }

  return (
    <section className="wizard" aria-labelledby="wizard-title">
      <p className="back">
        <a href="/agents" onClick={followLink("/agents")}>
          ← Agents
        </a>
      </p>
      <h1 id="wizard-title">New agent</h1>
      {body}
    </section>
  );
}

function WizardForm({ catalogue }: { catalogue: Strategy[] }) {
  const initialKind = catalogue.find((s) => s.kind === "hold")?.kind ?? catalogue[0]?.kind ?? "";
  const [draft, setDraft] = useState<Draft>({ ...EMPTY, kind: initialKind });
  const [errors, setErrors] = useState<Errors>({});
  const [focus, setFocus] = useState<string | null>(null);
  const create = useCreateAgent();
  const idempotency = useRef<{ body: string; key: string } | null>(null);
  const formId = useId();

  const strategy = catalogue.find((s) => s.kind === draft.kind);
  const paramText = (name: string, fallback: string) =>
    (draft.kind && draft.params[draft.kind]?.[name]) ?? fallback;

  // After a refused submit, the first field with an error takes the focus (a screen reader then reads its message).
  useEffect(() => {
    if (focus === null) return;
    const element = document.getElementById(inputId(formId, focus));
    (element ?? document.getElementById(`${formId}-top`))?.focus();
    setFocus(null);
  }, [focus, formId]);

  function set<K extends keyof Draft>(key: K, value: Draft[K]) {
    setDraft((current) => ({ ...current, [key]: value }));
  }

  function setParam(name: string, value: string) {
    if (!draft.kind) return;
    const kind = draft.kind;
    setDraft((current) => ({ ...current, params: { ...current.params, [kind]: { ...current.params[kind], [name]: value } } }));
  }

  function refuse(found: Errors) {
    setErrors(found);
    setFocus(Object.keys(found)[0] ?? null);
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    const checked = check(draft, strategy, paramText);
    if (Object.keys(checked).length > 0) {
      refuse(checked);
      return;
    }
    const request = build(draft, strategy, paramText);
    const text = JSON.stringify(request);
    // The same body again (a retry after a lost answer) keeps its key, so the API answers it once.
    if (idempotency.current?.body !== text) idempotency.current = { body: text, key: newKey() };
    setErrors({});
    create.mutate(
      { body: request, key: idempotency.current.key },
      {
        onSuccess: (agent) => navigate(`/agents/${agent.agent_id}`),
        onError: (error) => refuse(placeError(error, strategy)),
      },
    );
  }

  const field = (pointer: string) => ({
    id: inputId(formId, pointer),
    error: errors[pointer],
    errorId: `${inputId(formId, pointer)}-error`,
  });

  return (
    <form className="wizard-form" onSubmit={submit} noValidate>
      <div id={`${formId}-top`} tabIndex={-1}>
        {errors[""] && (
          <p role="alert" className="error">
            {errors[""]}
          </p>
        )}
      </div>

      <TextField label="Name" {...field(FIELDS.name)} value={draft.name} onChange={(v) => set("name", v)}
        hint="Up to 80 characters." required maxLength={80} />
      <TextField label="Symbol" {...field(FIELDS.symbol)} value={draft.symbol} onChange={(v) => set("symbol", v)}
        hint="Capitals and digits, e.g. BTC-USD." required />

      <fieldset>
        <legend>Strategy and parameters</legend>
        <GroupError pointer="/strategy" errors={errors} />
        <div className="field">
          <label htmlFor={field(FIELDS.kind).id}>Strategy</label>
          <select
            id={field(FIELDS.kind).id}
            value={draft.kind}
            onChange={(event) => set("kind", event.target.value as Kind)}
            aria-describedby={describedBy(`${field(FIELDS.kind).id}-hint`, field(FIELDS.kind))}
            aria-invalid={errors[FIELDS.kind] ? true : undefined}
          >
            {catalogue.map((s) => (
              <option key={s.kind} value={s.kind}>
                {s.kind}
              </option>
            ))}
          </select>
          <p id={`${field(FIELDS.kind).id}-hint`} className="hint">
            {strategy?.description}
          </p>
          <FieldError {...field(FIELDS.kind)} />
        </div>
        {strategy && strategy.params.length === 0 && <p className="hint">This strategy has no parameters.</p>}
        {strategy?.params.map((param) => (
          <TextField
            key={`${strategy.kind}-${param.name}`}
            label={param.name}
            {...field(paramPointer(param.name))}
            value={paramText(param.name, param.default)}
            onChange={(v) => setParam(param.name, v)}
            hint={paramHint(param)}
            inputMode={param.type === "integer" ? "numeric" : "decimal"}
            required
          />
        ))}
      </fieldset>

      <TextField label="Tick every (seconds)" {...field(FIELDS.frequency_s)} value={draft.frequency_s}
        onChange={(v) => set("frequency_s", v)} hint="A whole number from 1 to 86400 (a day)." inputMode="numeric"
        required />
      <TextField label="Starting cash" {...field(FIELDS.starting_cash)} value={draft.starting_cash}
        onChange={(v) => set("starting_cash", v)} hint="Paper money the agent starts with; a decimal > 0."
        inputMode="decimal" required />

      <fieldset>
        <legend>Risk limits</legend>
        <GroupError pointer="/risk" errors={errors} />
        <p className="hint">Orders beyond these are rejected with a recorded reason.</p>
        <TextField label="Max position qty" {...field(FIELDS.max_position_qty)} value={draft.max_position_qty}
          onChange={(v) => set("max_position_qty", v)} hint="Units held at most." inputMode="decimal" required />
        <TextField label="Max order qty" {...field(FIELDS.max_order_qty)} value={draft.max_order_qty}
          onChange={(v) => set("max_order_qty", v)} hint="Units per order at most." inputMode="decimal" required />
        <TextField label="Max notional" {...field(FIELDS.max_notional)} value={draft.max_notional}
          onChange={(v) => set("max_notional", v)} hint="Value of the position at most; blank: the starting cash."
          inputMode="decimal" />
        <TextField label="Max daily loss" {...field(FIELDS.max_daily_loss)} value={draft.max_daily_loss}
          onChange={(v) => set("max_daily_loss", v)} hint="Blank: no daily loss limit." inputMode="decimal" />
      </fieldset>

      <TextField label="Seed" {...field(FIELDS.seed)} value={draft.seed} onChange={(v) => set("seed", v)}
        hint="Seeds the simulated market; blank: the server's default (42)." inputMode="numeric" />

      <button type="submit" disabled={create.isPending}>
        {create.isPending ? "Creating…" : "Create agent"}
      </button>
    </form>
  );
}

interface FieldProps {
  id: string;
  errorId: string;
  error: string | undefined;
}

function TextField(
  props: FieldProps & {
    label: string;
    value: string;
    onChange: (value: string) => void;
    hint: string;
    required?: boolean;
    maxLength?: number;
    inputMode?: "numeric" | "decimal";
  },
) {
  const hintId = `${props.id}-hint`;
  return (
    <div className="field">
      <label htmlFor={props.id}>
        {props.label}
        {props.required ? "" : " (optional)"}
      </label>
      <input
        id={props.id}
        type="text"
        value={props.value}
        onChange={(event) => props.onChange(event.target.value)}
        inputMode={props.inputMode}
        maxLength={props.maxLength}
        aria-required={props.required}
        aria-invalid={props.error ? true : undefined}
        aria-describedby={describedBy(hintId, props)}
        autoComplete="off"
        spellCheck={false}
      />
      <p id={hintId} className="hint">
        {props.hint}
      </p>
      <FieldError {...props} />
    </div>
  );
}

function FieldError({ error, errorId }: FieldProps) {
  return error ? (
    <p id={errorId} className="error field-error">
      {error}
    </p>
  ) : null;
}

/** An error the API names on a group (/strategy, /risk) rather than on one of its fields. */
function GroupError({ pointer, errors }: { pointer: string; errors: Errors }) {
  return errors[pointer] ? <p className="error field-error">{errors[pointer]}</p> : null;
}

function describedBy(hintId: string, { error, errorId }: FieldProps) {
  return error ? `${hintId} ${errorId}` : hintId;
}

function inputId(formId: string, pointer: string) {
  return `${formId}${pointer.replaceAll("/", "-")}`;
}

function paramHint(param: Schemas["StrategyParam"]): string {
  const range =
    param.type === "integer"
      ? `a whole number${param.min !== null && param.max !== null ? ` from ${param.min} to ${param.max}` : ""}`
      : "a decimal > 0";
  return `${param.description} (${range}; default ${param.default}).`;
}

type ParamText = (name: string, fallback: string) => string;

/** The slips the form catches itself: a required field left empty, and text where a number goes. */
export function check(draft: Draft, strategy: Strategy | undefined, paramText: ParamText): Errors {
  const errors: Errors = {};
  const need = (pointer: string, value: string, kind: "text" | "integer" | "decimal", required = true) => {
    const text = value.trim();
    if (text === "") {
      if (required) errors[pointer] = "Required.";
    } else if (kind === "integer" && !INTEGER.test(text)) {
      errors[pointer] = "Enter a whole number (digits only).";
    } else if (kind === "decimal" && !DECIMAL.test(text)) {
      errors[pointer] = "Enter a number such as 10 or 0.5 (digits and one point).";
    }
  };
  need(FIELDS.name, draft.name, "text");
  need(FIELDS.symbol, draft.symbol, "text");
  if (!strategy) errors[FIELDS.kind] = "Choose a strategy.";
  strategy?.params.forEach((param) =>
    need(paramPointer(param.name), paramText(param.name, param.default), param.type),
  );
  need(FIELDS.frequency_s, draft.frequency_s, "integer");
  need(FIELDS.starting_cash, draft.starting_cash, "decimal");
  need(FIELDS.max_position_qty, draft.max_position_qty, "decimal");
  need(FIELDS.max_order_qty, draft.max_order_qty, "decimal");
  need(FIELDS.max_notional, draft.max_notional, "decimal", false);
  need(FIELDS.max_daily_loss, draft.max_daily_loss, "decimal", false);
  need(FIELDS.seed, draft.seed, "integer", false);
  // JSON numbers lose digits past 2^53 in the browser; the seed must reach the API exactly as typed.
  if (!errors[FIELDS.seed] && draft.seed.trim() !== "" && !Number.isSafeInteger(Number(draft.seed.trim()))) {
    errors[FIELDS.seed] = `The dashboard takes seeds up to ${Number.MAX_SAFE_INTEGER}.`;
  }
  return errors;
}

/** The request body: decimals as the typed strings, integers as numbers, risk only when changed from the defaults. */
export function build(draft: Draft, strategy: Strategy | undefined, paramText: ParamText): CreateAgentRequest {
  const params = Object.fromEntries(
    (strategy?.params ?? []).map((param) => {
      const text = paramText(param.name, param.default).trim();
      return [param.name, param.type === "integer" ? Number(text) : text];
    }),
  );
  const request: CreateAgentRequest = {
    name: draft.name,
    symbol: draft.symbol.trim(),
    frequency_s: Number(draft.frequency_s.trim()),
    starting_cash: draft.starting_cash.trim(),
  };
  if (strategy) {
    request.strategy = (
      Object.keys(params).length > 0 ? { kind: strategy.kind, params } : { kind: strategy.kind }
    ) as CreateAgentRequest["strategy"];
  }
  const risk = {
    max_position_qty: draft.max_position_qty.trim(),
    max_order_qty: draft.max_order_qty.trim(),
    max_notional: draft.max_notional.trim(),
    max_daily_loss: draft.max_daily_loss.trim(),
  };
  const unchanged = (Object.keys(RISK_DEFAULTS) as (keyof typeof RISK_DEFAULTS)[]).every(
    (key) => risk[key] === RISK_DEFAULTS[key],
  );
  if (!unchanged) {
    request.risk = {
      max_position_qty: risk.max_position_qty,
      max_order_qty: risk.max_order_qty,
      // RiskLimits needs a notional cap; blank means the API's own default, the starting cash.
      max_notional: risk.max_notional || request.starting_cash,
      ...(risk.max_daily_loss ? { max_daily_loss: risk.max_daily_loss } : {}),
    };
  }
  const seed = draft.seed.trim();
  if (seed !== "") request.seed = Number(seed);
  return request;
}

/**
 * Where an API error shows: a 422 whose `field` is one of the form's fields (or a group: /strategy, /risk) at that
 * field, everything else (409 agent_already_exists, 403, 5xx, a network failure) at the top.
 */
export function placeError(error: unknown, strategy: Strategy | undefined): Errors {
  if (!(error instanceof ApiError)) return { "": "Could not reach the STROM API. Is strom serve running?" };
  const field = error.problem?.field;
  if (error.status === 422 && field) {
    const known = new Set<string>([
      ...Object.values(FIELDS),
      ...(strategy?.params ?? []).map((param) => paramPointer(param.name)),
      "/strategy",
      "/risk",
    ]);
    if (known.has(field)) return { [field]: error.message };
  }
  return { "": `The API answered ${error.status}: ${error.message}` };
}

/** An Idempotency-Key (1..=255 visible ASCII): 128 random bits in hex; getRandomValues works outside HTTPS too. */
function newKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
