import { describe, expect, it } from "vitest";
import { buildProgram } from "../../src/cli/program.js";
import { commandSpecs } from "../../src/cli/completion/spec.js";
import { completionScript } from "../../src/cli/completion/scripts.js";

describe("completion derived from the command tree", () => {
  const { program } = buildProgram();
  const specs = commandSpecs(program);
  const at = (path: string) => specs.find((s) => s.path === path)!;

  it("has every visible command and none of the hidden ones", () => {
    const walk = (c: typeof program, path: string): string[] =>
      c.commands.filter((x) => x.name() !== "__complete").flatMap((x) => [`${path}${x.name()}`, ...walk(x, `${path}${x.name()} `)]);
    expect(specs.map((s) => s.path).sort()).toEqual(["", ...walk(program, "")].sort());
    expect(at("").subs).not.toContain("__complete");
    expect(at("vm").subs).toEqual(expect.arrayContaining(["create", "ssh", "exec", "logs"]));
  });

  it("knows which words are VM names, image names and files", () => {
    expect(at("vm ssh").args[0]).toBe("vms");
    expect(at("vm port add").args).toEqual(["vms", "none"]);
    expect(at("image show").args).toEqual(["images"]);
    expect(at("vm create").values).toMatchObject({ "--image": "images", "--peers": "vms", "--name": "none" });
    expect(at("vm create").flags).toEqual(expect.arrayContaining(["--json", "--socket", "--image", "-p", "--publish"]));
    expect(at("image register").values["--kernel"]).toBe("files");
  });

  it("writes each shell's script from the same tree", () => {
    expect(completionScript("bash", specs)).toContain(`'vm logs') subs=''; flags='--json --socket --config --follow -f --help -h'`);
    expect(completionScript("zsh", specs)).toMatch(/^#compdef banger\n[\s\S]*bashcompinit[\s\S]*complete -F _banger banger\n$/);
    expect(completionScript("fish", specs)).toContain(`complete -c banger -n "__banger_at 'vm'; and __banger_argc 0"`.replace("'vm'", "'vm ssh'"));
  });
});
