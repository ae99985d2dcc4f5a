"""A small Hugging Face Hub on 127.0.0.1 for the tests: the endpoints `huggingface_hub` uses to create repos,
upload (preupload + NDJSON commit, regular uploads), make branches, list trees and paths, and download (resolve,
with HTTP ranges), keeping every repo's commits in memory. `refuse` makes it answer every request with one
status; `token` makes writes need that bearer token; `requests` records what was asked."""

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

REPO = r"(?P<kind>models|datasets)/(?P<repo>[^/]+/[^/]+)"
API_ROUTES = [
    ("POST", re.compile(r"^/api/repos/create$"), "create"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(rf"^/api/{REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/{REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
    ("POST", re.compile(rf"^/api/{REPO}/branch/(?P<rev>[^/]+)$"), "branch"),
    ("POST", re.compile(rf"^/api/{REPO}/paths-info/(?P<rev>[^/]+)$"), "paths_info"),
    ("GET", re.compile(rf"^/api/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "tree"),
    ("GET", re.compile(rf"^/api/{REPO}(?:/revision/(?P<rev>[^/]+))?$"), "info"),
]
RESOLVE = re.compile(r"^/(?:(?P<kind>datasets)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


def _sha(data):
    return hashlib.sha1(data).hexdigest()


class Repo:
    """One repository: commits (sha -> {path: bytes}) and branches (name -> sha)."""

    def __init__(self, private):
        self.private = private
        self.commits = {_sha(b"empty"): {}}
        self.branches = {"main": _sha(b"empty")}
        self.log = []  # (branch, commit message), oldest first

    def sha(self, revision):
        return self.branches.get(revision, revision if revision in self.commits else None)

    def commit(self, branch, additions, deletions, message):
        files = dict(self.commits[self.branches[branch]])
        for path in deletions:
            files = {p: d for p, d in files.items() if p != path and not p.startswith(path.rstrip("/") + "/")}
        files.update(additions)
        sha = _sha(json.dumps([message, sorted((p, _sha(d)) for p, d in files.items())]).encode() + branch.encode())
        self.commits[sha] = files
        self.branches[branch] = sha
        self.log.append((branch, message))
        return sha


class HubServer:
    """Run with `with HubServer() as hub:`; `hub.url` is the endpoint to put in `HF_ENDPOINT`."""

    def __init__(self, token=None):
        self.token = token
        self.refuse = None  # an HTTP status to answer every request with
        self.repos = {}  # (kind, repo_id) -> Repo
        self.requests = []  # (method, path)
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def files(self, repo_id, kind="models", revision="main"):
        """`{path: bytes}` of a repo at a revision."""
        repo = self.repos[(kind, repo_id)]
        return repo.commits[repo.sha(revision)]

    def uploads(self):
        """The requests that would change a repo."""
        return [r for r in self.requests if r[0] == "POST" and "/validate-yaml" not in r[1]]


def _handler(hub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _send(self, status, body=b"", headers=None, head=False):
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = {"Content-Type": "application/json", **(headers or {})}
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, str(value))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _error(self, status, message, code=None, head=False):
            self._send(status, {"error": message}, {"X-Error-Code": code} if code else None, head=head)

        def _body(self):
            return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

        def _authorised(self):
            if hub.token is None:
                return True
            return self.headers.get("Authorization") == f"Bearer {hub.token}"

        def _dispatch(self, method):
            url = urlsplit(self.path)
            with hub.lock:
                hub.requests.append((method, url.path))
            body = self._body() if method == "POST" else b""
            if hub.refuse:
                return self._error(hub.refuse, f"refused ({hub.refuse})", head=method == "HEAD")
            if method in ("GET", "HEAD") and (match := RESOLVE.match(url.path)):
                return self.resolve(match, head=method == "HEAD")
            for route_method, pattern, name in API_ROUTES:
                if route_method == method and (match := pattern.match(url.path)):
                    if method == "POST" and name != "validate_yaml" and not self._authorised():
                        return self._error(401, "Invalid credentials in Authorization header")
                    with hub.lock:
                        return getattr(self, name)(match, body, parse_qs(url.query))
            return self._error(404, f"no route {method} {url.path}")

        def do_GET(self):
            self._dispatch("GET")

        def do_HEAD(self):
            self._dispatch("HEAD")

        def do_POST(self):
            self._dispatch("POST")

        def _repo(self, match):
            repo = hub.repos.get((match["kind"] or "models", match["repo"]))
            if repo is None:
                self._error(404, "Repository not found", "RepoNotFound")
            return repo

        def _revision(self, repo, match):
            sha = repo.sha(unquote(match["rev"] or "main"))
            if sha is None:
                self._error(404, f"Invalid rev id: {match['rev']}", "RevisionNotFound")
            return sha

        # --- writing
        def create(self, match, body, query):
            payload = json.loads(body)
            kind = (payload.get("type") or "model") + "s"
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            prefix = "" if kind == "models" else "datasets/"
            if (kind, repo_id) in hub.repos:
                error = {"error": "You already created this repo", "url": f"{hub.url}/{prefix}{repo_id}"}
                return self._send(409, error)
            hub.repos[(kind, repo_id)] = Repo(private=payload.get("visibility") == "private")
            return self._send(200, {"url": f"{hub.url}/{prefix}{repo_id}", "name": repo_id})

        def validate_yaml(self, match, body, query):
            return self._send(200, {"errors": [], "warnings": []})

        def preupload(self, match, body, query):
            if self._repo(match) is None:
                return None
            files = json.loads(body)["files"]
            answer = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
            return self._send(200, {"files": answer, "commitOid": None})

        def commit(self, match, body, query):
            repo = self._repo(match)
            if repo is None:
                return None
            branch = unquote(match["rev"])
            if branch not in repo.branches:
                return self._error(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            message, additions, deletions = "", {}, []
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "header":
                    message = item["value"]["summary"]
                elif item["key"] == "file":
                    additions[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] in ("deletedFile", "deletedFolder"):
                    deletions.append(item["value"]["path"])
                else:
                    return self._error(400, f"unsupported commit operation {item['key']}")
            sha = repo.commit(branch, additions, deletions, message)
            prefix = "" if match["kind"] == "models" else "datasets/"
            return self._send(200, {"commitUrl": f"{hub.url}/{prefix}{match['repo']}/commit/{sha}", "commitOid": sha,
                                    "pullRequestUrl": None})

        def branch(self, match, body, query):
            repo = self._repo(match)
            if repo is None:
                return None
            name = unquote(match["rev"])
            if name in repo.branches:
                return self._error(409, f"Reference {name} already exists")
            start = json.loads(body).get("startingPoint") if body else None
            repo.branches[name] = repo.sha(start or "main")
            return self._send(200, {})

        # --- reading
        def _entries(self, files, prefix="", recursive=True):
            entries, folders = [], set()
            for path in sorted(files):
                if prefix and not path.startswith(prefix.rstrip("/") + "/"):
                    continue
                rest = path[len(prefix.rstrip("/") + "/"):] if prefix else path
                if "/" in rest and not recursive:
                    folders.add((prefix.rstrip("/") + "/" if prefix else "") + rest.split("/")[0])
                    continue
                for depth in range(1, rest.count("/") + 1):
                    folders.add((prefix.rstrip("/") + "/" if prefix else "") + "/".join(rest.split("/")[:depth]))
                entries.append({"type": "file", "path": path, "size": len(files[path]), "oid": _sha(files[path])})
            entries += [{"type": "directory", "path": f, "size": 0, "oid": _sha(f.encode())} for f in sorted(folders)]
            return entries

        def _files(self, match):
            """`(repo, commit sha, {path: bytes})` of the repo and revision in `match`, or None after a 404."""
            repo = self._repo(match)
            sha = self._revision(repo, match) if repo is not None else None
            return None if sha is None else (repo, sha, repo.commits[sha])

        def info(self, match, body, query):
            if (found := self._files(match)) is None:
                return None
            repo, sha, files = found
            return self._send(200, {"id": match["repo"], "sha": sha, "private": repo.private, "disabled": False,
                                    "gated": False, "tags": [], "siblings": [{"rfilename": p} for p in sorted(files)]})

        def tree(self, match, body, query):
            if (found := self._files(match)) is None:
                return None
            files = found[2]
            path = unquote(match["path"] or "").strip("/")
            if path and path not in {e["path"] for e in self._entries(files) if e["type"] == "directory"}:
                return self._error(404, f"{path} does not exist", "EntryNotFound")
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            return self._send(200, self._entries(files, path, recursive))

        def paths_info(self, match, body, query):
            if (found := self._files(match)) is None:
                return None
            wanted = {p.strip("/") for p in parse_qs(body.decode()).get("paths", [])}
            return self._send(200, [e for e in self._entries(found[2]) if e["path"] in wanted])

        def resolve(self, match, head):
            repo = hub.repos.get((match["kind"] or "models", match["repo"]))
            if repo is None:
                return self._error(404, "Repository not found", "RepoNotFound", head=head)
            sha = repo.sha(unquote(match["rev"]))
            if sha is None:
                return self._error(404, "Revision not found", "RevisionNotFound", head=head)
            data = repo.commits[sha].get(unquote(match["path"]))
            if data is None:
                return self._error(404, "Entry not found", "EntryNotFound", head=head)
            headers = {"ETag": f'"{_sha(data)}"', "X-Repo-Commit": sha, "Accept-Ranges": "bytes",
                       "Content-Type": "application/octet-stream"}
            ranged = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if ranged:
                start = int(ranged[1])
                end = min(int(ranged[2]) if ranged[2] else len(data) - 1, len(data) - 1)
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                return self._send(206, data[start:end + 1], headers, head=head)
            return self._send(200, data, headers, head=head)

    return Handler
