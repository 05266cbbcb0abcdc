// Changing a stopped agent (PATCH /api/v1/agents/{id}): its name, how often it runs, its strategy's parameters and
// its risk limits. The strategy kind, symbol, starting cash and seed stay as created here (the API refuses a new
// symbol or starting cash after the first start anyway). The API checks every value and names the field it refuses.
import { useId, useState, type FormEvent } from "react";
import { ApiError, type Agent, type Schemas } from "../../api/client";
import { canCommand, useMe } from "../../auth/me";
import { useUpdateAgent } from "./queries";

type Params = Record<string, string | number>;

interface Draft {
  name: string;
  frequency_s: string;
  params: Record<string, string>;
  max_position_qty: string;
  max_order_qty: string;
  max_notional: string;
  max_daily_loss: string;
}

function draftOf(agent: Agent): Draft {
  const params = (agent.strategy.params ?? {}) as Params;
  return {
    name: agent.name,
    frequency_s: String(agent.frequency_s),
    params: Object.fromEntries(Object.entries(params).map(([name, value]) => [name, String(value)])),
    max_position_qty: agent.risk.max_position_qty,
    max_order_qty: agent.risk.max_order_qty,
    max_notional: agent.risk.max_notional,
    max_daily_loss: agent.risk.max_daily_loss ?? "",
  };
}

/**
 * The PATCH body of a draft: integer parameters (numbers in the agent's config: fast, slow, window) as numbers,
 * decimals (qty, threshold_pct) as the strings typed, a blank daily-loss limit as none.
 */
export function patchOf(agent: Agent, draft: Draft): Schemas["AgentConfigPatch"] {
  const current = (agent.strategy.params ?? {}) as Params;
  const params = Object.fromEntries(
    Object.entries(draft.params).map(([name, value]) => [
      name,
      typeof current[name] === "number" ? Number(value.trim()) : value.trim(),
    ]),
  );
  return {
    name: draft.name.trim(),
    frequency_s: Number(draft.frequency_s.trim()),
    strategy: { kind: agent.strategy.kind, params } as Schemas["StrategyConfig"],
    risk: {
      max_position_qty: draft.max_position_qty.trim(),
      max_order_qty: draft.max_order_qty.trim(),
      max_notional: draft.max_notional.trim(),
      max_daily_loss: draft.max_daily_loss.trim() === "" ? null : draft.max_daily_loss.trim(),
    },
  };
}

const RISK_FIELDS: { key: keyof Draft & `max_${string}`; label: string; optional?: boolean }[] = [
  { key: "max_position_qty", label: "Largest position (qty)" },
  { key: "max_order_qty", label: "Largest order (qty)" },
  { key: "max_notional", label: "Largest order value (notional)" },
  { key: "max_daily_loss", label: "Daily loss limit (blank: none)", optional: true },
];

export function AgentEditor({ agent }: { agent: Agent }) {
  const me = useMe();
  const update = useUpdateAgent(agent.agent_id);
  const [saved, setSaved] = useState(false);
  const id = useId();
  if (!canCommand(me.data?.role) || agent.status !== "stopped") return null;
  const problem = update.error instanceof ApiError ? update.error : null;
  return (
    <section aria-labelledby={`${id}-title`}>
      <details className="editor">
        <summary>
          <h2 id={`${id}-title`}>Change settings</h2>
        </summary>
        <p className="hint">Only while the agent is stopped; the next start runs with the new settings.</p>
        {/* Keyed by version: once saved (or changed elsewhere) the form starts from the agent as it is now. */}
        <EditorForm
          key={agent.version}
          agent={agent}
          pending={update.isPending}
          onEdit={() => setSaved(false)}
          onUndo={() => {
            update.reset();
            setSaved(false);
          }}
          onSave={(patch) => update.mutate(patch, { onSuccess: () => setSaved(true) })}
        />
        {update.isError && (
          <p role="alert" className="error">
            Could not save: {update.error.message}
            {problem?.problem?.field ? ` (field ${problem.problem.field})` : ""}
          </p>
        )}
        {saved && !update.isError && (
          <p role="status" className="hint">
            Saved.
          </p>
        )}
      </details>
    </section>
  );
}

function EditorForm({
  agent,
  pending,
  onEdit,
  onUndo,
  onSave,
}: {
  agent: Agent;
  pending: boolean;
  onEdit: () => void;
  onUndo: () => void;
  onSave: (patch: Schemas["AgentConfigPatch"]) => void;
}) {
  const [draft, setDraft] = useState(() => draftOf(agent));
  const id = useId();
  const set = (change: Partial<Draft>) => {
    onEdit();
    setDraft((old) => ({ ...old, ...change }));
  };

  function submit(event: FormEvent) {
    event.preventDefault();
    onSave(patchOf(agent, draft));
  }

  return (
    <form onSubmit={submit} className="fields">
      <label htmlFor={`${id}-name`}>Name</label>
      <input id={`${id}-name`} value={draft.name} onChange={(event) => set({ name: event.target.value })} required />
      <label htmlFor={`${id}-frequency`}>Run every (seconds)</label>
      <input
        id={`${id}-frequency`}
        type="number"
        inputMode="numeric"
        min={1}
        max={86400}
        step={1}
        value={draft.frequency_s}
        onChange={(event) => set({ frequency_s: event.target.value })}
        required
      />
      {Object.entries(draft.params).map(([name, value]) => (
        <Field
          key={name}
          id={`${id}-param-${name}`}
          label={`${agent.strategy.kind}: ${name}`}
          value={value}
          onChange={(next) => set({ params: { ...draft.params, [name]: next } })}
        />
      ))}
      {RISK_FIELDS.map((field) => (
        <Field
          key={field.key}
          id={`${id}-${field.key}`}
          label={field.label}
          value={draft[field.key]}
          required={!field.optional}
          onChange={(next) => set({ [field.key]: next })}
        />
      ))}
      <div className="actions">
        <button type="submit" disabled={pending}>
          {pending ? "Saving…" : "Save settings"}
        </button>
        <button
          type="button"
          className="secondary"
          onClick={() => {
            setDraft(draftOf(agent));
            onUndo();
          }}
        >
          Undo changes
        </button>
      </div>
    </form>
  );
}

function Field({
  id,
  label,
  value,
  onChange,
  required = true,
}: {
  id: string;
  label: string;
  value: string;
  onChange: (value: string) => void;
  required?: boolean;
}) {
  return (
    <>
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        inputMode="decimal"
        value={value}
        onChange={(event) => onChange(event.target.value)}
        required={required}
        autoComplete="off"
        spellCheck={false}
      />
    </>
  );
}
