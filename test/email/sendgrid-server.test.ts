/**
 * The loopback SendGrid itself: it must reject what the real API rejects, or the
 * tests that use it prove nothing.
 */
import { expect } from 'chai';
import { startSendGridServer, type SendGridServer } from '../support/sendgrid-server.ts';

describe('loopback SendGrid server', () => {
  let server: SendGridServer;
  before(async () => {
    server = await startSendGridServer();
  });
  after(async () => {
    await server.close();
  });
  const post = (body: unknown, key = server.apiKey) =>
    fetch(`${server.url}/v3/mail/send`, { method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const valid = { personalizations: [{ to: [{ email: 'a@example.com' }] }], from: { email: 'b@example.com' }, subject: 's', content: [{ type: 'text/plain', value: 'x' }], custom_args: { k: 'v' } };

  it('accepts a valid body (with object custom_args, the schema bug overridden) with 202 and X-Message-Id', async () => {
    const res = await post(valid);
    expect(res.status).to.equal(202);
    expect(res.headers.get('x-message-id')).to.match(/^loopback-/);
  });

  it('rejects a body that breaks the official schema with 400 and the reasons', async () => {
    const res = await post({ from: { email: 'b@example.com' }, subject: 's' });
    expect(res.status).to.equal(400);
    const body = (await res.json()) as { errors: Array<{ message: string }> };
    expect(body.errors.map((e) => e.message).join(' ')).to.contain('personalizations');
    expect((await post({ ...valid, from: { email: 'not an address' } })).status).to.equal(400);
  });

  it('rejects a wrong bearer token with 401', async () => {
    expect((await post(valid, 'SG.other')).status).to.equal(401);
  });

  it('answers the failures a test queues, then recovers', async () => {
    server.failNext({ status: 429, headers: { 'Retry-After': '3' } }, { status: 500 });
    const first = await post(valid);
    expect(first.status).to.equal(429);
    expect(first.headers.get('retry-after')).to.equal('3');
    expect((await post(valid)).status).to.equal(500);
    expect((await post(valid)).status).to.equal(202);
  });

  it('lists the key\'s scopes at GET /v3/scopes ({"scopes": [...]}), 401 with an errors body for another key', async () => {
    const get = (key: string) => fetch(`${server.url}/v3/scopes`, { headers: { Authorization: `Bearer ${key}` } });
    const res = await get(server.apiKey);
    expect(res.status).to.equal(200);
    expect(((await res.json()) as { scopes: string[] }).scopes).to.include('mail.send');
    server.setScopes(['alerts.read']);
    expect(((await (await get(server.apiKey)).json()) as { scopes: string[] }).scopes).to.deep.equal(['alerts.read']);
    server.recover();
    const bad = await get('SG.other');
    expect(bad.status).to.equal(401);
    expect(((await bad.json()) as { errors: Array<{ message: string }> }).errors[0]!.message).to.be.a('string');
  });
});
