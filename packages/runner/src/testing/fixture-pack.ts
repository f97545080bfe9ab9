// A pack of small actions that exercise every refusal and enforcement path of the engine.
import { writePack } from './fixture.js';

/** Write the `fx` fixture pack into `dir`; `allowedDir` is the only folder its path args accept. */
export function writeFixturePack(dir: string, allowedDir: string): string {
  return writePack(dir, {
    'pack.yaml':
      'name: fixture\nversion: 1.0.0\nnamespace: fx\ndescription: Engine test fixture.\nredact:\n  - name: fx_secret\n    pattern: "fxsecret_[0-9a-f]{16}"\n    keywords: ["fxsecret_"]\n',
    'actions/echo.yaml': `id: fx.echo
title: Echo
description: Prints its argument.
risk: read
kind: exec
argv: ["echo", "{{msg}}"]
args:
  msg: { type: string, required: true, max_length: 1000 }
`,
    'actions/fail.yaml': 'id: fx.fail\ntitle: Fail\ndescription: Exits 1.\nrisk: read\nkind: exec\nargv: ["false"]\n',
    'actions/secrets.yaml': `id: fx.secrets
title: Print secrets
description: Prints fake credentials to test redaction.
risk: read
kind: exec
argv: ["echo", "key=AKIAZ7Q3LJHX4TNBV2WM pack=fxsecret_0123456789abcdef arg={{extra}}"]
args:
  extra: { type: string, default: none, max_length: 200 }
`,
    'actions/env.yaml': `id: fx.env
title: Environment
description: Prints the environment the action gets.
risk: read
kind: exec
argv: ["env"]
env: [FX_ALLOWED, FX_ABSENT]
set_env: { FX_FIXED: "1" }
`,
    'actions/sleep.yaml': `id: fx.sleep
title: Sleep
description: Prints its pid, then sleeps.
risk: read
kind: script
script: { path: scripts/sleep.sh, interpreter: sh }
argv: ["{{seconds}}"]
args:
  seconds: { type: integer, min: 1, max: 600, default: 300 }
limits: { timeout_s: 30, timeout_s_max: 600 }
`,
    'scripts/sleep.sh': 'echo "$$"\nexec sleep "$1"\n',
    'actions/tree.yaml': `id: fx.tree
title: Process tree
description: Starts a grandchild sleep, writes its pid, waits.
risk: read
kind: script
script: { path: scripts/tree.sh, interpreter: sh }
argv: ["{{pidfile}}"]
args:
  pidfile: { type: path, allow: ["${allowedDir}"], must_exist: false, required: true }
limits: { timeout_s: 1, timeout_s_max: 60 }
`,
    'scripts/tree.sh': 'sleep 300 &\necho "$!" > "$1"\necho started\nwait\n',
    'actions/flood.yaml': `id: fx.flood
title: Flood
description: Prints forever.
risk: read
kind: exec
argv: ["yes", "{{word}}"]
args:
  word: { type: string, default: y, pattern: "[a-z]+", max_length: 20 }
limits: { output_bytes: 4096, output_bytes_min: 1024, output_bytes_max: 65536, timeout_s: 20 }
`,
    'actions/cat.yaml': `id: fx.cat
title: Cat a file
description: Prints a file inside the allowed folder.
risk: read
kind: exec
argv: ["cat", "{{file}}"]
args:
  file: { type: path, allow: ["${allowedDir}"], required: true }
`,
    'actions/pem.yaml': `id: fx.pem
title: Print a private key
description: Prints a (fake) PEM private key block over several lines.
risk: read
kind: exec
argv: ["cat", "{{file}}"]
args:
  file: { type: path, allow: ["${allowedDir}"], required: true }
`,
    'actions/longline.yaml': `id: fx.longline
title: Long line
description: Prints one very long line.
risk: read
kind: exec
argv: ["seq", "-s", ",", "1", "{{n}}"]
args:
  n: { type: integer, min: 1, max: 200000, default: 20000 }
limits: { output_bytes: 1048576 }
`,
  });
}
