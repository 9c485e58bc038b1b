module.exports = require(process.env.SEGMENT_CHECKOUT + '/packages/destination-subscriptions/src/index.ts')
