/**
 * Exact decimals and how they are shown: never through a JavaScript number.
 */
import { expect } from 'chai';
import { Decimal } from 'decimal.js';
import fc from 'fast-check';
import { fixed2, formatDelta, formatMoney, formatMoneyChange, formatPercent, formatScore, parseDecimal, percentChange } from '../../lib/drift/decimal.ts';

describe('drift decimals', () => {
  it('parses numeric text and JSON numbers, and nothing else', () => {
    expect(fixed2(parseDecimal('61.755'))).to.equal('61.76');
    expect(fixed2(parseDecimal(60))).to.equal('60.00');
    for (const bad of ['', 'n/a', '1,000', null, undefined, true, {}, Number.NaN]) expect(parseDecimal(bad)).to.equal(null);
  });

  it('parses plain decimal text exactly, whatever its length and decimals (the quick path and the general one agree)', () => {
    const digits = (max: number) => fc.stringMatching(new RegExp(`^[0-9]{1,${max}}$`));
    fc.assert(
      fc.property(fc.boolean(), digits(20), fc.constantFrom('', '.', '.5', '.05', '.50', '.123', '.995'), fc.constantFrom('', ' '), (negative, int, frac, pad) => {
        const text = `${pad}${negative ? '-' : ''}${int}${frac}${pad}`;
        // Written from the text with decimal.js, not with the parser under test.
        const expected = BigInt(new Decimal(`${negative ? '-' : ''}${int}${frac === '.' ? '' : frac}`).times(100).toDecimalPlaces(0, Decimal.ROUND_HALF_UP).toFixed(0));
        expect(parseDecimal(text), JSON.stringify(text)).to.equal(expected === 0n ? 0n : expected);
      }),
    );
    for (const bad of ['-', '.', '-.', '1.2.3', '1e', '--1', '1-', '١٢']) expect(parseDecimal(bad), bad).to.equal(null);
  });

  it('subtracts and divides exactly (0.3 - 0.1 is 0.2)', () => {
    expect(fixed2(parseDecimal('0.3')! - parseDecimal('0.1')!)).to.equal('0.20');
    expect(percentChange(parseDecimal('3'), parseDecimal('4'))).to.equal('33.33');
    expect(percentChange(parseDecimal('-200'), parseDecimal('-100'))).to.equal('50.00');
    expect(percentChange(parseDecimal('0'), parseDecimal('4'))).to.equal(null);
  });

  it('shows money with grouping, keeping digits a float would lose', () => {
    expect(formatMoney('12345678901234.56')).to.equal('$12,345,678,901,235');
    expect(formatMoney('980.50')).to.equal('$980.50');
    expect(formatMoney('1000.49')).to.equal('$1,000');
    expect(formatMoney('-12400.00')).to.equal('-$12,400');
    expect(formatMoney('2500000', 'EUR')).to.equal('€2,500,000');
    expect(formatMoney('10', 'CHF')).to.equal('10 CHF');
    expect(formatMoneyChange('60000.00')).to.equal('+$60,000');
    expect(formatMoneyChange('-5.25')).to.equal('-$5.25');
  });

  it('shows scores without trailing zeros, and signed changes', () => {
    expect([formatScore('61.50'), formatScore('60.00'), formatScore('61.75')]).to.deep.equal(['61.5', '60', '61.75']);
    expect([formatDelta('3.50'), formatDelta('-1.25'), formatDelta('0.00')]).to.deep.equal(['+3.5', '-1.25', '0']);
    expect([formatPercent('5.00'), formatPercent('-12.34'), formatPercent('0.04')]).to.deep.equal(['+5.0%', '-12.3%', '0.0%']);
  });

  it('keeps every cent of the largest numeric(16,2) amounts, where a double would not', () => {
    expect(fixed2(parseDecimal('99999999999999.99')! - parseDecimal('0.01')!)).to.equal('99999999999999.98');
    expect(percentChange(parseDecimal('99999999999999.99'), parseDecimal('-99999999999999.99'))).to.equal('-200.00');
    expect(percentChange(parseDecimal('0.03'), parseDecimal('99999999999999.99'))).to.equal('333333333333333200.00');
  });

  it('rounds a value with more than two decimals half away from zero, once, when it is read', () => {
    expect([parseDecimal('61.755'), parseDecimal('61.7549'), parseDecimal('-61.755'), parseDecimal('0.005'), parseDecimal('-0.004')]).to.deep.equal([6176n, 6175n, -6176n, 1n, 0n]);
    expect([parseDecimal(1e21), parseDecimal('1.5e2'), parseDecimal('15e-2'), parseDecimal('.5'), parseDecimal('5.')]).to.deep.equal([10n ** 23n, 15000n, 15n, 50n, 500n]);
    expect(parseDecimal('1e100000')).to.equal(null);
  });

  it('agrees with decimal.js (half away from zero) on any two-decimal figures', () => {
    const Dec = Decimal.clone({ precision: 60, rounding: Decimal.ROUND_HALF_UP });
    const cents = fc.bigInt({ min: -(10n ** 16n) + 1n, max: 10n ** 16n - 1n });
    const text = (c: bigint) => new Dec(c.toString()).div(100).toFixed(2);
    fc.assert(
      fc.property(cents, cents, (a, b) => {
        const [x, y] = [text(a), text(b)];
        expect(fixed2(parseDecimal(x))).to.equal(x);
        expect(fixed2(parseDecimal(y)! - parseDecimal(x)!)).to.equal(new Dec(y).minus(x).toFixed(2).replace(/^-0\.00$/, '0.00'));
        const pct = new Dec(x).isZero() ? null : new Dec(y).minus(x).div(new Dec(x).abs()).times(100).toFixed(2).replace(/^-0\.00$/, '0.00');
        expect(percentChange(parseDecimal(x), parseDecimal(y))).to.equal(pct);
        expect(formatPercent(x)).to.equal(`${new Dec(x).toDecimalPlaces(1).isZero() ? '' : new Dec(x).isNegative() ? '-' : '+'}${new Dec(x).abs().toFixed(1)}%`);
        expect(formatScore(x)).to.equal(new Dec(x).toString().replace(/^-0$/, '0'));
      }),
      { numRuns: 500 },
    );
  });
});
