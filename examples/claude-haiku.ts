// @skill claude-haiku
// @description Asks Claude for a haiku about the given topic
// @secrets ANTHROPIC_API_KEY
// @network api.anthropic.com
// @timeout 60
const topic = Deno.env.get("topic") ?? "secrets";
const res = await fetch("https://api.anthropic.com/v1/messages", {
  method: "POST",
  headers: {
    "x-api-key": Deno.env.get("ANTHROPIC_API_KEY")!,
    "anthropic-version": "2023-06-01",
    "content-type": "application/json",
  },
  body: JSON.stringify({
    model: "claude-3-5-haiku-latest",
    max_tokens: 200,
    messages: [{ role: "user", content: `Write a haiku about ${topic}.` }],
  }),
});
if (!res.ok) throw new Error(`Anthropic API answered ${res.status}`);
const body = await res.json();
console.log(body.content.map((part: { text?: string }) => part.text ?? "").join(""));
