// Finding the `codetier` binary and the message shown when it is missing.
// Free of `vscode` imports so it runs under `node --test`.

import * as path from "node:path";

export const INSTALL_COMMAND = "cargo install --path server --locked";

export type Resolution = { kind: "found"; command: string } | { kind: "missing"; message: string };

export interface ResolveInput {
  /** `codetier.server.path`, possibly empty. */
  configured?: string | null;
  /** The `PATH` environment variable. */
  envPath?: string;
  platform: NodeJS.Platform;
  /** `PATHEXT` on Windows. */
  pathExt?: string;
  /** Whether an executable file exists at this path. */
  isExecutable: (file: string) => boolean;
  /** Expands a leading `~` in the configured path. */
  home?: string;
}

/** Where the server binary is: the configured path when set (it must exist), else the first on PATH. */
export function resolveServer(input: ResolveInput): Resolution {
  const configured = input.configured?.trim();
  if (configured) {
    const full = input.home && (configured === "~" || configured.startsWith("~/")) ? path.join(input.home, configured.slice(1)) : configured;
    if (input.isExecutable(full)) {
      return { kind: "found", command: full };
    }
    return {
      kind: "missing",
      message: `codetier: \`codetier.server.path\` is set to "${configured}", but no executable is there. Build it with \`cargo build\` (debug: target/debug/codetier) or install it with \`${INSTALL_COMMAND}\`, then fix the setting.`,
    };
  }
  const found = findOnPath("codetier", input.envPath ?? "", input.platform, input.pathExt, input.isExecutable);
  if (found !== undefined) {
    return { kind: "found", command: found };
  }
  return {
    kind: "missing",
    message: `codetier: the language server \`codetier\` is not on PATH. From a codetier checkout run \`${INSTALL_COMMAND}\` (see the README's Editors section), or set \`codetier.server.path\` to the binary.`,
  };
}

/** The first `name` on `envPath` that is executable; on Windows each `PATHEXT` extension is tried. */
export function findOnPath(
  name: string,
  envPath: string,
  platform: NodeJS.Platform,
  pathExt: string | undefined,
  isExecutable: (file: string) => boolean,
): string | undefined {
  const windows = platform === "win32";
  const sep = windows ? ";" : ":";
  const join = (dir: string, file: string): string => (windows ? path.win32.join(dir, file) : path.posix.join(dir, file));
  const exts = windows ? (pathExt ?? ".EXE;.CMD;.BAT").split(";").filter((e) => e !== "") : [""];
  for (const dir of envPath.split(sep)) {
    if (dir === "") {
      continue;
    }
    for (const ext of exts) {
      const candidate = join(dir, name + ext.toLowerCase());
      if (isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}
