import { BangerError } from "./errors.js";

const ADJECTIVES = [
  "amber",
  "brave",
  "brisk",
  "calm",
  "clever",
  "cosmic",
  "crisp",
  "dapper",
  "eager",
  "fancy",
  "fuzzy",
  "gentle",
  "glad",
  "golden",
  "happy",
  "hardy",
  "humble",
  "jolly",
  "keen",
  "lively",
  "lucky",
  "mellow",
  "merry",
  "mighty",
  "nimble",
  "noble",
  "odd",
  "plucky",
  "proud",
  "quick",
  "quiet",
  "rapid",
  "rosy",
  "rusty",
  "sharp",
  "shiny",
  "silent",
  "snappy",
  "solid",
  "spry",
  "steady",
  "sunny",
  "swift",
  "tidy",
  "tiny",
  "vivid",
  "warm",
  "wise",
  "witty",
  "zesty",
];

const NOUNS = [
  "badger",
  "beacon",
  "bison",
  "boulder",
  "canyon",
  "cedar",
  "comet",
  "coral",
  "crane",
  "delta",
  "ember",
  "falcon",
  "fern",
  "fjord",
  "gecko",
  "glacier",
  "harbor",
  "heron",
  "island",
  "jaguar",
  "kestrel",
  "lagoon",
  "lantern",
  "lynx",
  "maple",
  "meadow",
  "mesa",
  "nebula",
  "orca",
  "otter",
  "panda",
  "pebble",
  "pine",
  "quartz",
  "raven",
  "reef",
  "river",
  "robin",
  "sparrow",
  "summit",
  "thistle",
  "tiger",
  "tundra",
  "valley",
  "walrus",
  "willow",
  "wombat",
  "yak",
  "zebra",
  "zephyr",
];

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Why a user-given name is unacceptable, or undefined when it is fine. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return "is empty";
  if (name.length > 63) return `is ${name.length} characters long; the limit is 63`;
  if (name.includes("/")) return "contains '/'";
  if (name.includes("..")) return "contains '..'";
  if (/\s/.test(name)) return "contains whitespace";
  if (/[A-Z]/.test(name)) return "contains uppercase letters";
  if (!DNS_LABEL.test(name)) return "is not a DNS label (a-z, 0-9 and '-', not starting or ending with '-')";
  return undefined;
}

export function validateName(name: string, what: "VM" | "image" | "alias"): string {
  const problem = nameProblem(name);
  if (problem) {
    throw new BangerError("INVALID_NAME", `${what} name ${JSON.stringify(name)} ${problem}`, {
      hint: "use lowercase letters, digits and '-', at most 63 characters, e.g. 'dev-box-1'",
    });
  }
  return name;
}

/** Image names also allow dots ("alpine-3.22.2-1"), but never "..". */
export function validateImageName(name: string): string {
  const problem = name.includes("..") ? "contains '..'" : nameProblem(name.replace(/\./g, "-"));
  if (problem) {
    throw new BangerError("INVALID_NAME", `image name ${JSON.stringify(name)} ${problem}`, {
      hint: "use lowercase letters, digits, '-' and '.', at most 63 characters, e.g. 'debian-12.8-1'",
    });
  }
  return name;
}

/** mulberry32: tiny seeded PRNG so tests can pin the sequence. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class NameGenerator {
  constructor(private readonly random: () => number = Math.random) {}

  /** A fresh adjective-noun name not in `taken`; a numeric suffix once the plain space runs dry. */
  next(taken: (name: string) => boolean): string {
    const pick = <T>(xs: T[]): T => xs[Math.floor(this.random() * xs.length)];
    for (let attempt = 0; attempt < 200; attempt++) {
      const base = `${pick(ADJECTIVES)}-${pick(NOUNS)}`;
      const name = attempt < 50 ? base : `${base}-${Math.floor(this.random() * 10_000)}`;
      if (!taken(name)) return name;
    }
    // 2500 bases × 10000 suffixes: reaching here means the taken set is pathological.
    for (let i = 0; ; i++) {
      const name = `vm-${i}`;
      if (!taken(name)) return name;
    }
  }
}
