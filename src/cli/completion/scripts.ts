import type { CmdSpec, ValueKind } from "./spec.js";

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

/** Single-quoted for sh and fish alike (the words here are command and flag names: no quotes in them). */
const q = (s: string) => `'${s}'`;

/**
 * Bash (and zsh through bashcompinit): `_banger_spec PATH` sets what the command PATH offers; the
 * completion function walks the words typed so far to find PATH, skipping flags and their values.
 */
function bash(specs: CmdSpec[]): string {
  const cases = specs
    .map((s) => {
      const values = Object.entries(s.values)
        .map(([f, k]) => `${f}=${k}`)
        .join(" ");
      return `    ${q(s.path)}) subs=${q(s.subs.join(" "))}; flags=${q(s.flags.join(" "))}; values=${q(values)}; args=${q(s.args.join(" "))} ;;`;
    })
    .join("\n");
  return `# banger shell completion (bash). Load it with: source <(banger completion bash)
_banger_spec() {
  subs=""; flags=""; values=""; args=""
  case "$1" in
${cases}
  esac
}

# The kind of value flag $2 takes under command $1, or nothing when it takes none.
_banger_value_kind() {
  local subs flags values args v
  _banger_spec "$1"
  for v in $values; do
    [[ "\${v%%=*}" == "$2" ]] && { printf '%s' "\${v#*=}"; return; }
  done
}

_banger_names() {
  local kind=$1 cur=$2
  case "$kind" in
    vms|images) COMPREPLY=($(compgen -W "$(command banger __complete "$kind" "\${_banger_global[@]}" 2>/dev/null)" -- "$cur")) ;;
    files) COMPREPLY=($(compgen -f -- "$cur")) ;;
    *) COMPREPLY=() ;;
  esac
}

_banger() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path="" i w kind n=0 pending=""
  local subs flags values args
  local -a _banger_global=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    if [[ -n "$pending" ]]; then
      [[ "$pending" == --socket || "$pending" == --config ]] && _banger_global+=("$pending" "$w")
      pending=""; continue
    fi
    if [[ "$w" == -* ]]; then
      [[ "$w" == *=* ]] && continue
      [[ -n "$(_banger_value_kind "$path" "$w")" ]] && pending=$w
      continue
    fi
    _banger_spec "$path"
    if [[ " $subs " == *" $w "* ]]; then
      path=\${path:+$path }$w; n=0
    else
      n=$((n + 1))
    fi
  done
  if [[ -n "$pending" ]]; then
    _banger_names "$(_banger_value_kind "$path" "$pending")" "$cur"
    return
  fi
  _banger_spec "$path"
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    return
  fi
  if [[ -n "$subs" ]]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    return
  fi
  local -a kinds=($args)
  kind=\${kinds[n]:-none}
  _banger_names "$kind" "$cur"
}
complete -F _banger banger
`;
}

/** zsh runs the bash function through its bashcompinit layer: one completion logic for both. */
function zsh(specs: CmdSpec[]): string {
  return `#compdef banger
# banger shell completion (zsh). Load it with: source <(banger completion zsh)
(( $+functions[compdef] )) || { autoload -Uz compinit && compinit -u; }
autoload -U +X bashcompinit && bashcompinit
${bash(specs).split("\n").slice(1).join("\n")}`;
}

/** A fish condition, double-quoted around the single-quoted path. */
const fishCond = (path: string, extra = "") => `"__banger_at ${q(path)}${extra}"`;

/** fish: one `complete` line per subcommand and flag, each guarded by the command path typed so far. */
function fish(specs: CmdSpec[]): string {
  const valueFlags = [...new Set(specs.flatMap((s) => Object.keys(s.values)))].join(" ");
  const subsOf = specs.map((s) => `    case ${q(s.path)}\n      echo ${q(s.subs.join(" "))}`).join("\n");
  const lines: string[] = [];
  const fromDaemon = (k: ValueKind) => (k === "vms" || k === "images" ? `-f -a '(banger __complete ${k} 2>/dev/null)'` : k === "files" ? "-F" : "-f");
  for (const s of specs) {
    for (const sub of s.subs) lines.push(`complete -c banger -n ${fishCond(s.path)} -f -a ${q(sub)}`);
    for (const f of s.flags) {
      const kind = s.values[f];
      const name = f.startsWith("--") ? `-l ${f.slice(2)}` : `-s ${f.slice(1)}`;
      lines.push(`complete -c banger -n ${fishCond(s.path)} ${name}${kind ? ` -r ${fromDaemon(kind)}` : ""}`);
    }
    s.args.forEach((k, i) => {
      if (k !== "none") lines.push(`complete -c banger -n ${fishCond(s.path, `; and __banger_argc ${i}`)} ${fromDaemon(k)}`);
    });
  }
  return `# banger shell completion (fish). Load it with: banger completion fish | source
function __banger_subs
  switch $argv[1]
${subsOf}
  end
end

# The command path typed so far (words that name subcommands), and how many arguments follow it.
function __banger_walk
  set -l path ''
  set -l n 0
  set -l skip 0
  for w in (commandline -opc)[2..-1]
    if test $skip = 1
      set skip 0
      continue
    end
    if string match -q -- '-*' $w
      contains -- $w ${valueFlags}; and set skip 1
      continue
    end
    if contains -- $w (string split ' ' -- (__banger_subs $path))
      set path (string trim -- "$path $w")
      set n 0
    else
      set n (math $n + 1)
    end
  end
  echo $path
  echo $n
end

function __banger_at
  test (__banger_walk)[1] = "$argv[1]"
end

function __banger_argc
  test (__banger_walk)[2] = "$argv[1]"
end

complete -c banger -e
${lines.join("\n")}
`;
}

export function completionScript(shell: Shell, specs: CmdSpec[]): string {
  return shell === "bash" ? bash(specs) : shell === "zsh" ? zsh(specs) : fish(specs);
}
