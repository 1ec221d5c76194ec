// VS Code glue: starts the codetier language server and wires commands, settings, status bar and views.
// The logic lives in vscode-free modules (settings, actions, result, tiers, serverPath) that unit tests cover.

import * as fs from "node:fs";
import * as os from "node:os";
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ResponseError,
  ServerOptions,
  TransportKind,
} from "vscode-languageclient/node";

import { Action, ACTION_TITLES, ACTIONS, actionOfCommand, buildCommandArguments, CLIENT_COMMANDS, menuKind, serverCommand } from "./actions";
import {
  Answer,
  answerMarkdown,
  completionToggle,
  INITIAL_STATUS,
  parseCommandResult,
  parseUsage,
  StatusState,
  statusText,
  UsageReport,
  usageTooltip,
  withAnswer,
  withUsage,
} from "./result";
import { collectServerSettings, didChangeSettings, JsonObject } from "./settings";
import { INSTALL_COMMAND, resolveServer } from "./serverPath";
import { tierPickItems } from "./tiers";

const SECTION = "codetier";
const ANSWER_SCHEME = "codetier-answer";

let client: LanguageClient | undefined;
let status: StatusState = INITIAL_STATUS;
let lastUsage: UsageReport | undefined;
let statusItem: vscode.StatusBarItem;
let completionItem: vscode.StatusBarItem;
let output: vscode.OutputChannel;
const answers = new Map<string, string>();
const answerChanged = new vscode.EventEmitter<vscode.Uri>();
let answerCount = 0;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("codetier");
  statusItem = vscode.window.createStatusBarItem("codetier.status", vscode.StatusBarAlignment.Right, 100);
  statusItem.name = "codetier";
  statusItem.command = "codetier.showUsage";
  // Inline completions (ghost text): the toggle flips the user setting `codetier.completion.enabled`,
  // which the server reads through didChangeConfiguration; the middleware below skips the request
  // at once while it is off.
  completionItem = vscode.window.createStatusBarItem("codetier.completions", vscode.StatusBarAlignment.Right, 99);
  completionItem.name = "codetier inline completions";
  completionItem.command = "codetier.toggleCompletions";
  showCompletionToggle();
  context.subscriptions.push(output, statusItem, completionItem, answerChanged);
  context.subscriptions.push(
    vscode.workspace.registerTextDocumentContentProvider(ANSWER_SCHEME, {
      onDidChange: answerChanged.event,
      provideTextDocumentContent: (uri) => answers.get(uri.toString()) ?? "",
    }),
  );

  for (const action of ACTIONS) {
    context.subscriptions.push(
      vscode.commands.registerCommand(CLIENT_COMMANDS[action].run, () => runAction(action, false)),
      vscode.commands.registerCommand(CLIENT_COMMANDS[action].withTier, () => runAction(action, true)),
    );
  }
  context.subscriptions.push(
    vscode.commands.registerCommand("codetier.showUsage", showUsage),
    vscode.commands.registerCommand("codetier.restartServer", restart),
    vscode.commands.registerCommand("codetier.showOutput", () => output.show(true)),
    vscode.commands.registerCommand("codetier.toggleCompletions", toggleCompletions),
    vscode.workspace.onDidChangeConfiguration(onConfigurationChanged),
  );
  refreshStatus();
  await start();
}

export async function deactivate(): Promise<void> {
  await stop();
}

/** Reads every explicitly set `codetier.*` value and converts it to the server's schema. */
function serverSettings(): JsonObject {
  const config = vscode.workspace.getConfiguration(SECTION);
  return collectServerSettings((key) => config.inspect(key));
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, process.platform === "win32" ? fs.constants.F_OK : fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

async function start(): Promise<void> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const resolved = resolveServer({
    configured: config.get<string | null>("server.path"),
    envPath: process.env.PATH,
    platform: process.platform,
    pathExt: process.env.PATHEXT,
    isExecutable,
    home: os.homedir(),
  });
  if (resolved.kind === "missing") {
    output.appendLine(resolved.message);
    statusItem.hide();
    void vscode.window.showErrorMessage(resolved.message, "Open Settings", "Copy Install Command").then(async (choice) => {
      if (choice === "Open Settings") {
        await vscode.commands.executeCommand("workbench.action.openSettings", "codetier.server.path");
      } else if (choice === "Copy Install Command") {
        await vscode.env.clipboard.writeText(INSTALL_COMMAND);
      }
    });
    return;
  }
  const extraEnv = config.get<Record<string, string>>("server.extraEnv") ?? {};
  const serverOptions: ServerOptions = {
    command: resolved.command,
    transport: TransportKind.stdio,
    options: { env: { ...process.env, ...extraEnv } },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    outputChannel: output,
    initializationOptions: () => serverSettings(),
    middleware: {
      provideInlineCompletionItems: (document, position, context, token, next) =>
        completionsEnabled() ? next(document, position, context, token) : undefined,
      // The lightbulb groups actions by kind: move codetier's from "More Actions…" to the first group.
      provideCodeActions: async (document, range, context, token, next) => {
        const actions = await next(document, range, context, token);
        for (const action of actions ?? []) {
          if (action instanceof vscode.CodeAction) {
            const kind = menuKind(action.kind?.value, context.only?.value);
            if (kind !== undefined) {
              action.kind = vscode.CodeActionKind.Empty.append(kind);
            }
          }
        }
        return actions;
      },
      // Code actions from the lightbulb run the server's commands through here: catch their results too.
      executeCommand: async (command, args, next) => {
        const value: unknown = await next(command, args);
        const target = commandTarget(args);
        onResult(command, value, target);
        return value;
      },
      workspace: {
        // A server that pulls `codetier` gets the same converted object as initializationOptions.
        configuration: async (params, token, next) => {
          const settings = serverSettings();
          if (params.items.every((item) => item.section === SECTION)) {
            return params.items.map(() => settings);
          }
          const pulled: unknown = await next(params, token);
          if (!Array.isArray(pulled)) {
            return pulled as ResponseError<void>;
          }
          const values: unknown[] = pulled;
          return params.items.map((item, i) => (item.section === SECTION ? settings : values[i]));
        },
      },
    },
  };
  client = new LanguageClient("codetier", "codetier", serverOptions, clientOptions);
  // The inline completion feature (textDocument/inlineCompletion) is among the proposed features of
  // vscode-languageclient 9; it is the only one there.
  client.registerProposedFeatures();
  try {
    await client.start();
    output.appendLine(`codetier: started ${resolved.command} --stdio`);
    statusItem.show();
  } catch (err) {
    const message = `codetier: the server (${resolved.command}) failed to start: ${errorText(err)}. Its log is in the codetier output channel.`;
    void vscode.window.showErrorMessage(message, "Show Log").then((c) => c && output.show(true));
  }
}

async function stop(): Promise<void> {
  const running = client;
  client = undefined;
  if (running !== undefined) {
    await running.stop().catch((err: unknown) => output.appendLine(`codetier: stopping the server: ${errorText(err)}`));
  }
}

async function restart(): Promise<void> {
  await stop();
  await start();
}

/** Whether inline completions are on: the setting as it applies here (a workspace may turn them off). */
function completionsEnabled(): boolean {
  return vscode.workspace.getConfiguration(SECTION).get<boolean | null>("completion.enabled") !== false;
}

function showCompletionToggle(): void {
  const { text, tooltip } = completionToggle(completionsEnabled());
  completionItem.text = text;
  completionItem.tooltip = tooltip;
  completionItem.show();
}

async function toggleCompletions(): Promise<void> {
  await vscode.workspace
    .getConfiguration(SECTION)
    .update("completion.enabled", !completionsEnabled(), vscode.ConfigurationTarget.Global);
}

function onConfigurationChanged(event: vscode.ConfigurationChangeEvent): void {
  if (!event.affectsConfiguration(SECTION)) {
    return;
  }
  if (event.affectsConfiguration("codetier.completion.enabled")) {
    showCompletionToggle();
  }
  if (event.affectsConfiguration("codetier.server.path") || event.affectsConfiguration("codetier.server.extraEnv")) {
    void vscode.window.showInformationMessage("codetier: the server path or environment changed.", "Restart Server").then((c) => c && restart());
    return;
  }
  if (client?.isRunning() === true) {
    void client.sendNotification(DidChangeConfigurationNotification.type, { settings: didChangeSettings(serverSettings()) });
  }
}

interface Target {
  uri: vscode.Uri;
  line: number;
}

function commandTarget(args: unknown[]): Target | undefined {
  const first: unknown = args[0];
  if (typeof first !== "object" || first === null) {
    return undefined;
  }
  const arg = first as { uri?: unknown; range?: { start?: { line?: unknown } } };
  if (typeof arg.uri !== "string") {
    return undefined;
  }
  const line = typeof arg.range?.start?.line === "number" ? arg.range.start.line : 0;
  return { uri: vscode.Uri.parse(arg.uri), line };
}

async function runAction(action: Action, chooseTier: boolean): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (editor === undefined) {
    void vscode.window.showInformationMessage(`codetier: open a file and select code to ${ACTION_TITLES[action].toLowerCase()}.`);
    return;
  }
  if (client === undefined || !client.isRunning()) {
    void vscode.window.showErrorMessage("codetier: the language server is not running.", "Restart Server", "Show Log").then((c) => {
      if (c === "Restart Server") {
        void restart();
      } else if (c === "Show Log") {
        output.show(true);
      }
    });
    return;
  }
  let tier: string | undefined;
  if (chooseTier) {
    const config = vscode.workspace.getConfiguration(SECTION);
    const items = tierPickItems({
      action,
      tiers: config.get("tiers") ?? undefined,
      actionTier: config.get<string | null>(`actions.${action}.tier`) ?? undefined,
      actionEscalate: config.get<string[] | null>(`actions.${action}.escalate`) ?? undefined,
    });
    const picked = await vscode.window.showQuickPick(items, { title: `codetier: ${ACTION_TITLES[action]} with which tier?`, matchOnDescription: true });
    if (picked === undefined) {
      return;
    }
    tier = picked.tier;
  }
  const document = editor.document;
  const selection = editor.selection;
  const diagnostics = vscode.languages
    .getDiagnostics(document.uri)
    .filter((d) => d.source !== "codetier" && d.range.intersection(selection) !== undefined)
    .map((d) => (d.source ? `${d.source}: ${d.message}` : d.message));
  const args = buildCommandArguments({
    uri: client.code2ProtocolConverter.asUri(document.uri),
    range: client.code2ProtocolConverter.asRange(selection),
    tier,
    diagnostics,
  });
  const command = serverCommand(action);
  status = { ...status, busy: status.busy + 1 };
  refreshStatus();
  try {
    const value: unknown = await client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args });
    onResult(command, value, { uri: document.uri, line: selection.start.line });
  } catch (err) {
    void vscode.window.showErrorMessage(`codetier: ${ACTION_TITLES[action]} failed: ${errorText(err)}`);
  } finally {
    status = { ...status, busy: Math.max(0, status.busy - 1) };
    refreshStatus();
  }
}

function onResult(command: string, value: unknown, target: Target | undefined): void {
  if (actionOfCommand(command) === undefined) {
    return;
  }
  const result = parseCommandResult(value, command);
  if (result.kind === "pending") {
    void vscode.window.showInformationMessage(`codetier: ${result.message}`);
    return;
  }
  if (result.kind !== "answer") {
    return;
  }
  status = withAnswer(status, result);
  refreshStatus();
  const where = target === undefined ? "" : `${vscode.workspace.asRelativePath(target.uri)}:${target.line + 1}`;
  if (result.action === "explain") {
    void showMarkdown(answerMarkdown(result, where, sessionCost()), "explanation");
  } else if (result.action === "review") {
    void offerDetails(result, where);
  }
}

async function offerDetails(answer: Answer, where: string): Promise<void> {
  const count = answer.findings.length;
  const choice = await vscode.window.showInformationMessage(
    `codetier: review by ${answer.tierLabel || answer.tier}: ${count === 0 ? "no findings" : `${count} finding${count === 1 ? "" : "s"} in the Problems panel`}.`,
    "Show Details",
  );
  if (choice === "Show Details") {
    await showMarkdown(answerMarkdown(answer, where, sessionCost()), "review");
  }
}

async function showMarkdown(markdown: string, kind: string): Promise<void> {
  answerCount += 1;
  const uri = vscode.Uri.from({ scheme: ANSWER_SCHEME, path: `/${kind}-${answerCount}.md` });
  answers.set(uri.toString(), markdown);
  // Keep the last few answers only: each is a whole markdown document.
  if (answers.size > 20) {
    const oldest = answers.keys().next().value;
    if (oldest !== undefined) {
      answers.delete(oldest);
    }
  }
  answerChanged.fire(uri);
  try {
    await vscode.commands.executeCommand("markdown.showPreviewToSide", uri);
  } catch {
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true });
  }
}

async function showUsage(): Promise<void> {
  if (client === undefined || !client.isRunning()) {
    void vscode.window.showErrorMessage("codetier: the language server is not running.");
    return;
  }
  try {
    const value: unknown = await client.sendRequest(ExecuteCommandRequest.type, { command: "codetier.usage", arguments: [] });
    const report = parseUsage(value);
    if (report !== undefined) {
      lastUsage = report;
      status = withUsage(status, report);
      refreshStatus();
      await showMarkdown(usageTooltip(report), "usage");
    }
  } catch (err) {
    void vscode.window.showErrorMessage(`codetier: usage: ${errorText(err)}`);
  }
}

/** The session's cost as the status bar shows it, when known. */
function sessionCost(): number | undefined {
  return status.costKnown ? status.sessionCostUsd : undefined;
}

function refreshStatus(): void {
  statusItem.text = statusText(status);
  const tooltip = new vscode.MarkdownString(usageTooltip(lastUsage));
  tooltip.appendMarkdown("\n\nClick to refresh usage and cost.");
  statusItem.tooltip = tooltip;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
