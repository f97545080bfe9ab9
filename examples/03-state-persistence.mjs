// Files written by one exec are there for the next; upload and download files;
// nothing is shared between sandboxes, and nothing survives delete.
// Run: node examples/03-state-persistence.mjs
import { connect } from './_daemon.mjs';

const { client, close } = await connect();
const a = (await client.create({ language_pack: 'python' })).id;
const b = (await client.create({ language_pack: 'python' })).id;
try {
  await client.exec(a, { code: "open('/root/notes.txt', 'w').write('remember me')" });
  const again = await client.exec(a, { code: "print(open('/root/notes.txt').read())" });
  console.log('same sandbox, next exec:', again.stdout.trim());

  await client.putFile(a, '/root/data.csv', 'x,y\n1,2\n3,4\n');
  const sum = await client.exec(a, {
    code: "import csv; print(sum(int(r['y']) for r in csv.DictReader(open('/root/data.csv'))))",
  });
  console.log('uploaded CSV, column y sums to', sum.stdout.trim());
  await client.exec(a, { code: "open('/root/result.json','w').write('{\"ok\": true}')" });
  console.log('downloaded:', (await client.getFile(a, '/root/result.json')).toString());

  const other = await client.exec(b, { code: "import os; print(os.path.exists('/root/notes.txt'))" });
  console.log('visible from another sandbox?', other.stdout.trim());
} finally {
  await client.delete(a);
  await client.delete(b);
  await close();
}
