/** The files of a new pack: a manifest, one example action and a test for it. */
export function scaffoldPack(name: string, namespace: string): Record<string, string> {
  return {
    'pack.yaml': `name: ${name}
version: 0.1.0
namespace: ${namespace}
description: Describe what this pack is for and which hosts it targets.
`,
    'actions/greet.yaml': `# One action per file. Placeholders are whole argv elements: values never reach a shell.
id: ${namespace}.greet
title: Greet someone
description: Prints a greeting. Replace with a real action; see docs/action-packs.md.
risk: read
kind: exec
argv: ["echo", "hello,", "{{who}}"]
args:
  who:
    type: string
    description: Who to greet.
    pattern: '[A-Za-z][A-Za-z0-9 _.-]*'
    max_length: 64
    default: world
limits:
  timeout_s: 5
  timeout_s_max: 10
  output_bytes: 4096
examples:
  - args: { who: operator }
    description: Greets the operator.
`,
    'tests/greet.yaml': `# Run with: airlock pack test <dir>
action: ${namespace}.greet
args: { who: tester }
expect:
  status: success
  stdout_contains: hello, tester
`,
  };
}
