// @skill isolation-check
// @description Proves the proxy's Telegram token is out of a skill's reach
let token: string | undefined;
try {
  token = Deno.env.get("TELEGRAM_BOT_TOKEN");
} catch {
  token = undefined; // no env permission for it: exactly what should happen
}
console.log(token ? "LEAKED" : "NOT ACCESSIBLE");
