// The three actions, their command ids and the argument objects sent to the server.
// Free of `vscode` imports so it runs under `node --test`.

export type Action = "explain" | "generate" | "review";

export const ACTIONS: readonly Action[] = ["explain", "generate", "review"];

/** What the palette calls each action. */
export const ACTION_TITLES: Readonly<Record<Action, string>> = {
  explain: "Explain bug",
  generate: "Generate function",
  review: "Review selection",
};

/** The extension's own command ids (the server's `codetier.explain` etc. are registered by the client library). */
export const CLIENT_COMMANDS: Readonly<Record<Action, { run: string; withTier: string }>> = {
  explain: { run: "codetier.explainSelection", withTier: "codetier.explainSelectionWithTier" },
  generate: { run: "codetier.generateFunction", withTier: "codetier.generateFunctionWithTier" },
  review: { run: "codetier.reviewSelection", withTier: "codetier.reviewSelectionWithTier" },
};

/** The server command that runs `action`. */
export function serverCommand(action: Action): string {
  return `codetier.${action}`;
}

/** `codetier.review` -> `review`; anything else -> undefined. */
export function actionOfCommand(command: string): Action | undefined {
  const name = command.startsWith("codetier.") ? command.slice("codetier.".length) : "";
  return (ACTIONS as readonly string[]).includes(name) ? (name as Action) : undefined;
}

export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

/** The single argument of `codetier.explain|generate|review`, as the design fixes it. */
export interface CommandArgument {
  uri: string;
  range: Range;
  tier?: string;
  fresh?: boolean;
  /** Messages of other servers' diagnostics on the range, kept as context for the model. */
  diagnostics?: string[];
}

export interface ArgumentInput {
  uri: string;
  range: Range;
  tier?: string;
  fresh?: boolean;
  diagnostics?: readonly string[];
}

/**
 * The `arguments` array of `workspace/executeCommand`. The range is ordered start <= end (a selection
 * made upwards has its anchor after its cursor) and optional fields are left out rather than null.
 */
export function buildCommandArguments(input: ArgumentInput): [CommandArgument] {
  const [start, end] = before(input.range.start, input.range.end)
    ? [input.range.start, input.range.end]
    : [input.range.end, input.range.start];
  const arg: CommandArgument = {
    uri: input.uri,
    range: { start: { line: start.line, character: start.character }, end: { line: end.line, character: end.character } },
  };
  if (input.tier !== undefined && input.tier !== "") {
    arg.tier = input.tier;
  }
  if (input.fresh === true) {
    arg.fresh = true;
  }
  if (input.diagnostics !== undefined && input.diagnostics.length > 0) {
    arg.diagnostics = [...input.diagnostics];
  }
  return [arg];
}

function before(a: Position, b: Position): boolean {
  return a.line < b.line || (a.line === b.line && a.character <= b.character);
}

/** The kinds codetier's server gives its actions: `refactor.codetier.explain` and so on. */
export const SERVER_KIND_PREFIX = "refactor.codetier.";

/**
 * The kind an action of codetier's is shown under in VS Code's lightbulb menu, or undefined to
 * leave it as it is. VS Code groups that menu by kind (Quick Fix, Extract, Inline, Rewrite, Move,
 * Surround With, Source Action, then "More Actions…"), and `refactor.codetier.*` matches none of
 * the refactoring groups, so the actions landed last, under a dozen built-in refactorings. Shown as
 * `quickfix.codetier.*` they sit in the first group, as other AI actions (explain, fix) do. Only
 * for a menu that asked for every kind (`only` unset): a request for refactorings alone keeps the
 * server's kinds, so "Refactor…" still lists them.
 */
export function menuKind(kind: string | undefined, only: string | undefined): string | undefined {
  if (only !== undefined || kind === undefined || !kind.startsWith(SERVER_KIND_PREFIX)) {
    return undefined;
  }
  return `quickfix.codetier.${kind.slice(SERVER_KIND_PREFIX.length)}`;
}
