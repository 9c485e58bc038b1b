const src = process.env.SEGMENT_CHECKOUT + '/packages/core/src/'
module.exports = { ...require(src + 'omit.ts'), ...require(src + 'remove-undefined.ts'), ...require(src + 'defaults.ts') }
