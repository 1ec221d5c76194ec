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
