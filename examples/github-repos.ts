// @skill github-repos
// @description Lists the authenticated user's five most recently pushed repositories
// @secrets GITHUB_TOKEN
// @network api.github.com
const res = await fetch("https://api.github.com/user/repos?sort=pushed&per_page=5", {
  headers: {
    authorization: `Bearer ${Deno.env.get("GITHUB_TOKEN")}`,
    accept: "application/vnd.github+json",
    "user-agent": "oauth3-proxy-skill",
  },
});
if (!res.ok) throw new Error(`GitHub API answered ${res.status}`);
for (const repo of await res.json()) console.log(repo.full_name);
