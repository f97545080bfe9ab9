// An offline tool-calling agent loop backed by a sandbox. The "model" is scripted
// (no network, no API key): it answers with tool calls the way an LLM would, reads
// the tool results, fixes its own mistake, and finally answers. Swap `scriptedModel`
// for a real model client to make it live.
// Run: node examples/05-agent-loop.mjs
import { connect } from './_daemon.mjs';

/** Tools the agent may call; each runs inside the sandbox, never on the host. */
const tools = {
  run_python: async (client, id, { code }) => client.exec(id, { code, timeout_ms: 10_000 }),
  write_file: async (client, id, { path, content }) => client.putFile(id, path, content),
  read_file: async (client, id, { path }) => ({ content: (await client.getFile(id, path)).toString() }),
};

/** A scripted model: looks at the conversation and returns the next message. */
function scriptedModel(messages) {
  const last = messages.at(-1);
  const step = messages.filter((m) => m.role === 'assistant').length;
  if (step === 0)
    return {
      role: 'assistant',
      tool: 'write_file',
      args: {
        path: '/root/primes.py',
        content: 'def primes(n):\n    return [p for p in range(2, n) if all(p % d for d in range(2, p))]\n',
      },
    };
  // Like a real model, the first attempt has a mistake (a function name it never wrote)...
  if (step === 1)
    return {
      role: 'assistant',
      tool: 'run_python',
      args: { code: 'from primes import prime_sum\nprint(prime_sum(100))' },
    };
  if (step === 2 && last.result.exit_code !== 0) {
    // ...and it reads the ImportError from the tool result and corrects itself.
    return {
      role: 'assistant',
      tool: 'run_python',
      args: { code: 'from primes import primes\nprint(sum(primes(100)))' },
    };
  }
  const answer = messages.findLast((m) => m.role === 'tool' && m.result.exit_code === 0)?.result.stdout.trim();
  return { role: 'assistant', final: `The sum of the primes below 100 is ${answer}.` };
}

const { client, close } = await connect();
const { id } = await client.create({ language_pack: 'python', lifetime_s: 600 });
try {
  const messages = [{ role: 'user', content: 'What is the sum of the primes below 100? Write a module and use it.' }];
  for (let turn = 0; turn < 8; turn++) {
    const msg = scriptedModel(messages);
    messages.push(msg);
    if (msg.final) {
      console.log(`assistant: ${msg.final}`);
      break;
    }
    console.log(`assistant → ${msg.tool}(${JSON.stringify(msg.args).slice(0, 80)})`);
    const result = await tools[msg.tool](client, id, msg.args);
    console.log(`tool ← ${JSON.stringify(result).slice(0, 120)}`);
    messages.push({ role: 'tool', tool: msg.tool, result });
  }
} finally {
  await client.delete(id);
  await close();
}
