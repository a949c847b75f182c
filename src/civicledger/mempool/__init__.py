"""mempool"""
