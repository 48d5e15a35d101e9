// tus conformance with a standard client, unchanged: tus-js-client under
// Node against the running hub's /api/v1/uploads. A large page uploaded in
// chunks is interrupted and resumed by a new client (as after a tab reload)
// from the offset the hub holds; an upload left past its expiry starts
// again; an upload is terminated. Started by tests/tests/live_upload.rs,
// which starts `dangan-hub serve` with a short upload expiry and passes:
//   DANGAN_BASE_URL        the hub
//   DANGAN_TOKEN           a clerk's session token
//   DANGAN_LARGE_PAGE      a large PNG page to upload
//   DANGAN_SMALL_PAGE      a small PNG page
//   DANGAN_EXPIRE_SECONDS  the hub's [live] expire_seconds
// Prints "DANGAN-RESULT {json}" like the browser scenarios.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tus from "tus-js-client";

const base = process.env.DANGAN_BASE_URL;
const token = process.env.DANGAN_TOKEN;
const large = readFileSync(process.env.DANGAN_LARGE_PAGE);
const small = readFileSync(process.env.DANGAN_SMALL_PAGE);
const expireSeconds = Number(process.env.DANGAN_EXPIRE_SECONDS);
const endpoint = new URL("/api/v1/uploads", base).toString();
const storage = new tus.FileUrlStorage(join(mkdtempSync(join(tmpdir(), "dangan-tus-")), "urls.json"));
const CHUNK = 1024 * 1024;

// What the client did, request by request.
function options(number, filename, filetype, log, extra = {}) {
  return {
    endpoint,
    headers: { Authorization: `Bearer ${token}` },
    metadata: { business_number: number, filename, filetype },
    chunkSize: CHUNK,
    retryDelays: [0, 200, 500, 1000],
    urlStorage: storage,
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    onAfterResponse: (req, res) => {
      log.push({
        method: req.getMethod(),
        status: res.getStatus(),
        offset: Number(res.getHeader("Upload-Offset") ?? -1),
      });
    },
    ...extra,
  };
}

// Starts an upload and aborts it (without terminating) once `fraction` of
// the bytes are acknowledged; resolves with the upload's URL.
function interrupted(file, opts, fraction) {
  return new Promise((resolve, reject) => {
    let stopped = false;
    const upload = new tus.Upload(file, {
      ...opts,
      onProgress: () => {},
      onChunkComplete: (_chunk, accepted, total) => {
        if (!stopped && accepted >= total * fraction) {
          stopped = true;
          upload.abort(false).then(() => resolve(upload.url), reject);
        }
      },
      onSuccess: () => reject(new Error("finished before it could be interrupted")),
      onError: reject,
    });
    upload.start();
  });
}

// Resumes the previous upload of `file` if the client remembers one (as a
// reloaded page does), else starts afresh; resolves when it is done.
async function resumed(file, opts) {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(file, {
      ...opts,
      onSuccess: () => resolve(upload.url),
      onError: reject,
    });
    upload.findPreviousUploads().then((previous) => {
      if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0]);
      upload.start();
    }, reject);
  });
}

const result = { ok: false, steps: [] };
try {
  // 1. A large page, interrupted at 40 % and resumed by a new client.
  const first = [];
  const firstUrl = await interrupted(large, options("TUS-0001", "large.png", "image/png", first), 0.4);
  const held = first.filter((r) => r.method === "PATCH" && r.status === 204).at(-1).offset;
  assert.ok(held >= large.length * 0.4 && held < large.length, `held ${held} of ${large.length}`);
  const second = [];
  const secondUrl = await resumed(large, options("TUS-0001", "large.png", "image/png", second));
  assert.equal(secondUrl, firstUrl, "the same upload was resumed, not a new one");
  assert.deepEqual([second[0].method, second[0].status], ["HEAD", 200], "it asked where to resume");
  // At least what was acknowledged (bytes of a chunk cut off in flight count too).
  assert.ok(second[0].offset >= held && second[0].offset < large.length, `resumed from ${second[0].offset}`);
  assert.ok(!second.some((r) => r.method === "POST"), "no new upload was created");
  const resentFrom = second.find((r) => r.method === "PATCH");
  assert.ok(resentFrom, "it sent the rest");
  const last = second.at(-1);
  assert.deepEqual([last.method, last.status, last.offset], ["PATCH", 204, large.length]);
  result.steps.push({ name: "interrupted and resumed", url: firstUrl, held, size: large.length });

  // 2. An upload left past its expiry: the hub answers 410, the client starts again.
  const stale = [];
  const staleUrl = await interrupted(small, options("TUS-0002", "small.png", "image/png", stale, { chunkSize: 4096 }), 0.2);
  await new Promise((r) => setTimeout(r, (expireSeconds + 1.5) * 1000));
  const after = [];
  const freshUrl = await resumed(small, options("TUS-0002", "small.png", "image/png", after, { chunkSize: 4096 }));
  assert.equal(after[0].method, "HEAD");
  assert.ok([410, 404].includes(after[0].status), `the expired upload is gone (${after[0].status})`);
  assert.ok(after.some((r) => r.method === "POST" && r.status === 201), "a new upload was created");
  assert.notEqual(freshUrl, staleUrl);
  result.steps.push({ name: "expired and started again", stale: staleUrl, fresh: freshUrl });

  // 3. Termination.
  const doomed = await interrupted(large, options("TUS-0003", "doomed.png", "image/png", []), 0.2);
  await tus.Upload.terminate(doomed, { headers: { Authorization: `Bearer ${token}` } });
  const head = await fetch(doomed, { method: "HEAD", headers: { Authorization: `Bearer ${token}`, "Tus-Resumable": "1.0.0" } });
  assert.equal(head.status, 404, "a terminated upload is gone");
  result.steps.push({ name: "terminated", url: doomed });
  result.ok = true;
} catch (err) {
  result.error = String(err?.stack ?? err);
  process.exitCode = 1;
}
console.log(`DANGAN-RESULT ${JSON.stringify(result)}`);
