import { describe, expect, it } from 'vitest';
import { auditVerdict } from './audit.js';

// The verdict on `npm audit --json`'s output, offline: the audit itself needs the registry and runs in CI
// (`npm run audit:prod`, a step of .ci/run).
const report = (vulnerabilities: Record<string, number>) =>
  JSON.stringify({ auditReportVersion: 2, vulnerabilities: {}, metadata: { vulnerabilities } });

describe('npm audit verdict', () => {
  it('passes a report with nothing high or critical', () => {
    const verdict = auditVerdict(report({ info: 0, low: 2, moderate: 1, high: 0, critical: 0, total: 3 }));
    expect(verdict.outcome).toBe('clean');
    expect(verdict.message).toContain('0 critical, 0 high, 1 moderate, 2 low');
  });

  it('fails on a high or a critical finding', () => {
    expect(auditVerdict(report({ high: 1, critical: 0 })).outcome).toBe('findings');
    expect(auditVerdict(report({ high: 0, critical: 2 })).message).toMatch(/^2 high or critical/);
  });

  it('says the audit did not run when the endpoint refused (this registry answers 405 to its POST)', () => {
    const refused = JSON.stringify({
      message: '405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk',
      statusCode: 405,
      error: { summary: '', detail: '' },
    });
    expect(auditVerdict(refused)).toEqual({
      outcome: 'not-run',
      message: expect.stringContaining('405 Method Not Allowed'),
    });
  });

  it('says the audit did not run when npm printed no JSON at all (offline)', () => {
    expect(auditVerdict('').outcome).toBe('not-run');
    expect(auditVerdict('npm error network request failed').outcome).toBe('not-run');
    expect(
      auditVerdict(JSON.stringify({ error: { code: 'ENOTFOUND', summary: 'getaddrinfo ENOTFOUND' } })),
    ).toEqual({
      outcome: 'not-run',
      message: expect.stringContaining('ENOTFOUND'),
    });
  });
});
