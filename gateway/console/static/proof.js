// In-browser verification of an audit entry's inclusion proof against the signed checkpoint.
// Formats (gateway/audit/checkpoint.py, merkle.py): C2SP signed note with Ed25519, and the
// RFC 9162 §2.1.3.2 inclusion proof over SHA-256 leaf (0x00) and node (0x01) hashes.
"use strict";

(function () {
  const enc = new TextEncoder();

  function b64(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  async function sha256(data) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  }

  // Verifier key text: <name>+<8 hex of key hash>+<base64(0x01 || 32-byte public key)>
  // The name has no "+", the hash is 8 hex digits; the base64 key may contain "+" itself.
  function parseVerifier(text) {
    const match = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+=*)$/.exec(text.trim());
    if (!match) throw new Error("公钥格式不正确");
    const raw = b64(match[3]);
    if (raw.length !== 33 || raw[0] !== 0x01) throw new Error("不是 Ed25519 公钥");
    return { name: match[1], hash: parseInt(match[2], 16) >>> 0, key: raw.slice(1) };
  }

  async function verifyNote(noteText, verifier) {
    const split = noteText.indexOf("\n\n");
    if (split < 0) throw new Error("检查点格式不正确");
    const body = noteText.slice(0, split + 1);
    const expectedHash = (await sha256(concat(enc.encode(verifier.name + "\n"), new Uint8Array([1]), verifier.key)));
    const keyHash = ((expectedHash[0] << 24) | (expectedHash[1] << 16) | (expectedHash[2] << 8) | expectedHash[3]) >>> 0;
    if (keyHash !== verifier.hash) throw new Error("公钥摘要不符");
    const key = await crypto.subtle.importKey("raw", verifier.key, { name: "Ed25519" }, false, ["verify"]);
    for (const line of noteText.slice(split + 2).split("\n")) {
      if (!line.startsWith("\u2014 ")) continue;
      const [name, sig64] = line.slice(2).split(" ");
      if (name !== verifier.name) continue;
      const sig = b64(sig64);
      if (sig.length !== 68) continue;
      const lineHash = ((sig[0] << 24) | (sig[1] << 16) | (sig[2] << 8) | sig[3]) >>> 0;
      if (lineHash !== keyHash) continue;
      if (await crypto.subtle.verify({ name: "Ed25519" }, key, sig.slice(4), enc.encode(body))) {
        const lines = body.slice(0, -1).split("\n");
        return { origin: lines[0], size: Number(lines[1]), root: b64(lines[2]) };
      }
    }
    throw new Error("没有有效的签名");
  }

  async function rootFromProof(leaf, index, size, proof) {
    let fn = index, sn = size - 1;
    let r = await sha256(concat(new Uint8Array([0]), leaf));
    for (const p of proof) {
      if (p.length !== 32 || sn === 0) throw new Error("证明长度不正确");
      if ((fn & 1) === 1 || fn === sn) {
        r = await sha256(concat(new Uint8Array([1]), p, r));
        while (fn !== 0 && (fn & 1) === 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await sha256(concat(new Uint8Array([1]), r, p));
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Error("证明长度不正确");
    return r;
  }

  function show(id, ok, text) {
    const el = document.getElementById(id);
    el.textContent = text;
    el.dataset.state = ok ? "ok" : "failed";
  }

  async function run(section) {
    const response = await fetch(section.dataset.proofUrl, { credentials: "same-origin" });
    if (!response.ok) {
      show("check-signature", false, "无法取得证明");
      show("check-inclusion", false, "无法取得证明");
      show("proof-result", false, "校验失败：服务器未给出证明（HTTP " + response.status + "）");
      return;
    }
    const data = await response.json();
    document.getElementById("verifier-key").textContent = data.verifier_key || "（未配置）";
    document.getElementById("checkpoint-note").textContent = data.checkpoint;
    let checkpoint;
    try {
      checkpoint = await verifyNote(data.checkpoint, parseVerifier(data.verifier_key || ""));
      show("check-signature", true, "有效（树大小 " + checkpoint.size + "）");
    } catch (err) {
      show("check-signature", false, "无效：" + err.message);
      show("check-inclusion", false, "未校验（检查点不可信）");
      show("proof-result", false, "校验失败：检查点签名无效");
      return;
    }
    try {
      if (checkpoint.size !== data.tree_size) throw new Error("证明的树大小与检查点不符");
      const root = await rootFromProof(b64(data.leaf), data.index, data.tree_size, data.hashes.map(b64));
      if (!equal(root, checkpoint.root)) throw new Error("推算的根哈希与检查点不符");
      show("check-inclusion", true, "有效");
      show("proof-result", true, "校验通过：本记录包含在已签名的审计日志中");
    } catch (err) {
      show("check-inclusion", false, "无效：" + err.message);
      show("proof-result", false, "校验失败：" + err.message);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const section = document.getElementById("proof");
    if (section) run(section).catch((err) => show("proof-result", false, "校验失败：" + err.message));
  });
})();
