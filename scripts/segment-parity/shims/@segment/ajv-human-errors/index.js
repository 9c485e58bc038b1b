module.exports = require(process.env.SEGMENT_CHECKOUT + '/packages/ajv-human-errors/src/index.ts')
