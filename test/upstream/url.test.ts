import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkUpstreamUrl, isDockerHub, normalizeUpstreamUrl } from '../../src/upstream/url.ts';

test('normalises upstream URLs: lower-case host, default port, trailing slash and /v2 removed', () => {
  const cases: [string, string][] = [
    ['https://registry-1.docker.io', 'https://registry-1.docker.io'],
    ['HTTPS://Registry-1.Docker.IO:443/', 'https://registry-1.docker.io'],
    ['http://registry.example.com:80/v2', 'http://registry.example.com'],
    ['https://registry.example.com/v2/', 'https://registry.example.com'],
    ['https://registry.example.com:5000/v2//', 'https://registry.example.com:5000'],
    ['https://example.com/artifactory/api/docker/remote/v2', 'https://example.com/artifactory/api/docker/remote'],
    ['https://example.com/a/../b/', 'https://example.com/b'],
    ['  https://ghcr.io  ', 'https://ghcr.io'],
    ['https://bücher.example', 'https://xn--bcher-kva.example'],
    ['https://[2001:DB8::1]:8443/', 'https://[2001:db8::1]:8443'],
  ];
  for (const [raw, expected] of cases) assert.deepEqual(normalizeUpstreamUrl(raw), { ok: true, value: expected }, raw);
});

test('refuses what is not a plain http(s) URL', () => {
  const cases: [string, RegExp][] = [
    ['', /required/],
    ['registry.example.com', /absolute/],
    ['ftp://registry.example.com', /http or https/],
    ['file:///etc/passwd', /http or https/],
    ['https://user:pass@registry.example.com', /credentials/],
    ['https://user@registry.example.com', /credentials/],
    ['https://@registry.example.com', /credentials/],
    ['https://registry.example.com/?a=1', /query/],
    ['https://registry.example.com?', /query/],
    ['https://registry.example.com/#top', /fragment/],
    ['https://', /absolute/],
    ['https://registry.example.com:99999', /absolute/],
    [`https://registry.example.com/${'a'.repeat(2048)}`, /2048/],
  ];
  for (const [raw, message] of cases) {
    const result = normalizeUpstreamUrl(raw);
    assert.equal(result.ok, false, raw);
    if (result.ok) continue;
    assert.equal(result.reason, 'invalid');
    assert.match(result.message, message, raw);
    assert.deepEqual(result.fields, { url: [result.message] });
  }
});

test('refuses loopback, private and link-local hosts unless private upstreams are allowed', async () => {
  for (const raw of ['https://10.0.0.1', 'http://127.0.0.1:5000', 'https://[::1]', 'http://169.254.169.254/latest', 'https://localhost:5000', 'https://192.168.1.10', 'https://0x7f.1', 'https://[::ffff:127.0.0.1]']) {
    const refused = await checkUpstreamUrl(raw, false);
    assert.equal(refused.ok, false, raw);
    if (!refused.ok) assert.match(refused.message, /internal host/);
    assert.equal((await checkUpstreamUrl(raw, true)).ok, true, raw);
  }
  assert.deepEqual(await checkUpstreamUrl('https://8.8.8.8/v2/', false), { ok: true, value: 'https://8.8.8.8' });
});

test('recognises Docker Hub by host', () => {
  for (const url of ['https://registry-1.docker.io', 'https://docker.io', 'https://index.docker.io/v2', 'https://REGISTRY-1.docker.io']) assert.equal(isDockerHub(url), true, url);
  for (const url of ['https://ghcr.io', 'https://docker.io.example.com', 'https://mirror.gcr.io', 'not a url']) assert.equal(isDockerHub(url), false, url);
});
