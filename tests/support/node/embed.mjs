// A reader outside Python: the official `openai` npm package against `reembed serve`.
// Usage: REEMBED_URL=http://127.0.0.1:8000/v1 REEMBED_SERVE_TOKEN=... node embed.mjs MODEL TEXT...
// Prints {"model": ..., "embeddings": [[...], ...]} as JSON.
import OpenAI from "openai";

const [model, ...input] = process.argv.slice(2);
const client = new OpenAI({ baseURL: process.env.REEMBED_URL, apiKey: process.env.REEMBED_SERVE_TOKEN });
const answer = await client.embeddings.create({ model, input });
console.log(JSON.stringify({ model: answer.model, embeddings: answer.data.map((d) => d.embedding) }));
