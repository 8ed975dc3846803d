/**
 * Exact decimals and how they are shown: never through a JavaScript number.
 */
import { expect } from 'chai';
import { fixed2, formatDelta, formatMoney, formatMoneyChange, formatPercent, formatScore, parseDecimal, percentChange } from '../../lib/drift/decimal.ts';

describe('drift decimals', () => {
  it('parses numeric text and JSON numbers, and nothing else', () => {
    expect(fixed2(parseDecimal('61.755'))).to.equal('61.76');
    expect(fixed2(parseDecimal(60))).to.equal('60.00');
    for (const bad of ['', 'n/a', '1,000', null, undefined, true, {}, Number.NaN]) expect(parseDecimal(bad)).to.equal(null);
  });

  it('subtracts and divides exactly (0.3 - 0.1 is 0.2)', () => {
    expect(fixed2(parseDecimal('0.3')!.minus(parseDecimal('0.1')!))).to.equal('0.20');
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
});
